//! A small JSON Schema (2020-12) validator for postie's published JSON
//! formats: the keywords those schemas use, and a failure for any other,
//! so that a schema cannot grow a rule this validator silently ignores.
//! (The `jsonschema` crate would do, at the price of a much longer build.)

use std::path::Path;

use serde_json::Value;

/// The schema in `doc/NAME` of the source tree.
pub fn schema(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("doc").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// Panics with every violation, each with its JSON pointer.
pub fn assert_valid(schema: &Value, instance: &Value) {
    let errors = violations(schema, instance);
    assert!(
        errors.is_empty(),
        "{}\nin:\n{}",
        errors.join("\n"),
        serde_json::to_string_pretty(instance).unwrap()
    );
}

/// Every way `instance` breaks `schema`.
pub fn violations(schema: &Value, instance: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check(schema, schema, instance, "", &mut errors);
    errors
}

fn check(root: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let Some(rules) = schema.as_object() else {
        panic!("schema at {at} is not an object: {schema}");
    };
    for (keyword, rule) in rules {
        match keyword.as_str() {
            "$schema" | "$id" | "$defs" | "title" | "description" => {}
            "$ref" => {
                let name = rule
                    .as_str()
                    .and_then(|r| r.strip_prefix("#/$defs/"))
                    .unwrap_or_else(|| panic!("only local $refs: {rule}"));
                let target = &root["$defs"][name];
                assert!(!target.is_null(), "no $defs/{name}");
                check(root, target, value, at, errors);
            }
            "type" => {
                let types: Vec<&str> = match rule {
                    Value::String(one) => vec![one.as_str()],
                    Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
                    _ => panic!("bad type rule {rule}"),
                };
                if !types.iter().any(|t| is_type(value, t)) {
                    errors.push(format!("{at}: {value} is not {types:?}"));
                }
            }
            "const" => {
                if value != rule {
                    errors.push(format!("{at}: {value} is not {rule}"));
                }
            }
            "enum" => {
                if !rule.as_array().unwrap().contains(value) {
                    errors.push(format!("{at}: {value} is not one of {rule}"));
                }
            }
            "oneOf" => {
                let outcomes: Vec<Vec<String>> = rule
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|branch| violations_under(root, branch, value, at))
                    .collect();
                match outcomes.iter().filter(|o| o.is_empty()).count() {
                    1 => {}
                    // Why each branch failed, to find the field at fault.
                    0 => errors.extend(outcomes.into_iter().flatten()),
                    n => errors.push(format!("{at}: {n} oneOf branches match {value}")),
                }
            }
            "required" => {
                if let Some(object) = value.as_object() {
                    for key in rule.as_array().unwrap().iter().filter_map(Value::as_str) {
                        if !object.contains_key(key) {
                            errors.push(format!("{at}: missing {key:?}"));
                        }
                    }
                }
            }
            "properties" => {
                if let Some(object) = value.as_object() {
                    for (key, sub) in rule.as_object().unwrap() {
                        if let Some(field) = object.get(key) {
                            check(root, sub, field, &format!("{at}/{key}"), errors);
                        }
                    }
                }
            }
            "additionalProperties" => {
                assert_eq!(
                    rule,
                    &Value::Bool(false),
                    "only additionalProperties: false"
                );
                let known = schema["properties"].as_object();
                if let Some(object) = value.as_object() {
                    for key in object.keys() {
                        if !known.is_some_and(|k| k.contains_key(key)) {
                            errors.push(format!("{at}: unexpected {key:?}"));
                        }
                    }
                }
            }
            "items" => {
                if let Some(items) = value.as_array() {
                    for (index, item) in items.iter().enumerate() {
                        check(root, rule, item, &format!("{at}/{index}"), errors);
                    }
                }
            }
            "minimum" => {
                if let (Some(n), Some(min)) = (value.as_f64(), rule.as_f64()) {
                    if n < min {
                        errors.push(format!("{at}: {n} < {min}"));
                    }
                }
            }
            "maximum" => {
                if let (Some(n), Some(max)) = (value.as_f64(), rule.as_f64()) {
                    if n > max {
                        errors.push(format!("{at}: {n} > {max}"));
                    }
                }
            }
            "pattern" => {
                if let Some(text) = value.as_str() {
                    if !matches_pattern(rule.as_str().unwrap(), text) {
                        errors.push(format!("{at}: {text:?} does not match {rule}"));
                    }
                }
            }
            "format" => {
                assert_eq!(rule, "date-time", "only format date-time");
                if let Some(text) = value.as_str() {
                    if !is_utc_date_time(text) {
                        errors.push(format!("{at}: {text:?} is not an ISO 8601 date-time"));
                    }
                }
            }
            other => panic!("the test validator does not know the keyword {other:?}"),
        }
    }
}

fn violations_under(root: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
    let mut errors = Vec::new();
    check(root, schema, value, at, &mut errors);
    errors
}

fn is_type(value: &Value, name: &str) -> bool {
    match name {
        "object" => value.is_object(),
        "array" => value.is_array(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "null" => value.is_null(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        other => panic!("unknown type {other}"),
    }
}

/// The schemas' patterns, each checked by hand (no regex engine here): a
/// new pattern must be added, never skipped.
fn matches_pattern(pattern: &str, text: &str) -> bool {
    match pattern {
        "^(DNS|IP):" => text.starts_with("DNS:") || text.starts_with("IP:"),
        "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$" => is_utc_date_time(text),
        "^[0-9A-F]{2}(:[0-9A-F]{2}){31}$" => {
            let pairs: Vec<&str> = text.split(':').collect();
            pairs.len() == 32
                && pairs.iter().all(|pair| {
                    pair.len() == 2
                        && pair
                            .chars()
                            .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c))
                })
        }
        other => panic!("the test validator does not know the pattern {other:?}"),
    }
}

/// "2026-12-02T06:23:50Z", the one date form postie writes.
fn is_utc_date_time(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 20
        && bytes.iter().enumerate().all(|(i, &b)| match i {
            4 | 7 => b == b'-',
            10 => b == b'T',
            13 | 16 => b == b':',
            19 => b == b'Z',
            _ => b.is_ascii_digit(),
        })
        && (1..=12).contains(&text[5..7].parse::<u32>().unwrap_or(0))
        && (1..=31).contains(&text[8..10].parse::<u32>().unwrap_or(0))
        && text[11..13].parse::<u32>().unwrap_or(99) < 24
}
