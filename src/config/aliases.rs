//! Local recipients: `root`, `www-data`, `logcheck`.
//!
//! Cron, mdadm and smartd mail local users. A relay-only sender has no
//! local mailboxes, so each local name is expanded through an aliases file
//! (sendmail syntax, usually /etc/aliases; its `default:` entry catches
//! every other name), else goes to the config's `admin`, else is qualified
//! with the account's `local_domain`. Without any it is an error that
//! names the three fixes, before any server sees it, rather than a bounce
//! later.
//!
//! Headers are another matter: an alias target is where the mail goes, not
//! a name to show the recipients, so headers only ever get a local name
//! qualified ([`LocalRules::qualify_header`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::exit::{io_reason, Error, Exit, Result};

/// How deep aliases may refer to other aliases before we call it a loop.
const MAX_DEPTH: usize = 10;

/// A parsed aliases file: lower-cased name to its targets.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Aliases {
    path: PathBuf,
    entries: HashMap<String, Vec<String>>,
}

impl Aliases {
    pub(crate) fn load(path: &Path) -> Result<Aliases> {
        use std::io::Read;
        let cannot = |err: std::io::Error| {
            Error::config(format!(
                "cannot read aliases file {}: {}",
                path.display(),
                io_reason(&err)
            ))
        };
        // Whoever can change the aliases can have root's mail sent anywhere.
        let mut file = std::fs::File::open(path).map_err(cannot)?;
        let meta = file.metadata().map_err(cannot)?;
        crate::permissions::check_trusted_file(&meta, path, "aliases file")?;
        let mut text = String::new();
        file.read_to_string(&mut text).map_err(cannot)?;
        Self::parse(&text, path)
    }

    /// Parses `name: target, target` lines; a line starting with white
    /// space continues the previous one; `#` starts a comment line.
    pub(crate) fn parse(text: &str, path: &Path) -> Result<Aliases> {
        let mut logical: Vec<(usize, String)> = Vec::new();
        for (index, line) in text.lines().enumerate() {
            if line.trim_start().starts_with('#') || line.trim().is_empty() {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                match logical.last_mut() {
                    Some((_, current)) => {
                        current.push(' ');
                        current.push_str(line.trim());
                    }
                    None => {
                        return Err(Error::config(format!(
                            "{} line {}: continuation line with no alias before it",
                            path.display(),
                            index + 1
                        )))
                    }
                }
            } else {
                logical.push((index + 1, line.trim().to_string()));
            }
        }
        let mut entries = HashMap::new();
        for (line_number, line) in logical {
            let Some((name, targets)) = line.split_once(':') else {
                return Err(Error::config(format!(
                    "{} line {line_number}: expected 'name: address, ...'",
                    path.display()
                )));
            };
            let targets: Vec<String> = targets
                .split(',')
                .map(|t| t.trim().trim_matches('"').to_string())
                .filter(|t| !t.is_empty())
                .collect();
            entries.insert(name.trim().to_lowercase(), targets);
        }
        Ok(Aliases {
            path: path.to_path_buf(),
            entries,
        })
    }

    fn lookup(&self, name: &str) -> Option<&Vec<String>> {
        self.entries
            .get(&name.to_lowercase())
            // msmtp's convention: `default:` catches every other local name.
            .or_else(|| self.entries.get("default"))
    }
}

/// What qualifies local names: an aliases file, a catch-all address,
/// domains.
#[derive(Debug, Default, Clone)]
pub(crate) struct LocalRules {
    pub(crate) aliases: Option<Aliases>,
    pub(crate) local_domain: Option<String>,
    /// The config's `admin`: mail for a local name no alias maps.
    pub(crate) admin: Option<String>,
    /// The domain of the account's `from`: qualifies local names in
    /// headers when there is no `local_domain`.
    pub(crate) from_domain: Option<String>,
}

impl LocalRules {
    /// Expands one envelope recipient into the addresses to send to.
    /// Qualified addresses pass through unchanged.
    pub(crate) fn expand(&self, address: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        self.expand_into(address, 0, &mut out)?;
        Ok(out)
    }

    fn expand_into(&self, address: &str, depth: usize, out: &mut Vec<String>) -> Result<()> {
        if address.contains('@') {
            out.push(address.to_string());
            return Ok(());
        }
        if depth > MAX_DEPTH {
            return Err(Error::config(format!(
                "aliases loop: {address:?} is still a local name after {MAX_DEPTH} expansions"
            )));
        }
        if let Some(aliases) = &self.aliases {
            if let Some(targets) = aliases.lookup(address) {
                for target in targets {
                    if target.starts_with(['|', '/']) || target.starts_with(":include:") {
                        return Err(Error::config(format!(
                            "alias {address:?} in {} delivers to {target:?}; postie only relays mail",
                            aliases.path.display()
                        ))
                        .hint("map it to an e-mail address"));
                    }
                    // An alias may name itself to mean the mailbox, as in
                    // `root: root, admin@example.com`.
                    if target.eq_ignore_ascii_case(address) {
                        self.unmatched(address, out)?;
                    } else {
                        self.expand_into(target, depth + 1, out)?;
                    }
                }
                return Ok(());
            }
        }
        self.unmatched(address, out)
    }

    /// A local name that no alias maps. `admin` comes before
    /// `local_domain`: it is the one address said to read such mail, while
    /// a mailbox at the local domain may not exist on a relay-only host.
    fn unmatched(&self, name: &str, out: &mut Vec<String>) -> Result<()> {
        if let Some(admin) = &self.admin {
            out.push(admin.clone());
            return Ok(());
        }
        match &self.local_domain {
            Some(domain) => {
                out.push(format!("{name}@{domain}"));
                Ok(())
            }
            None => Err(Error::new(
                Exit::NoUser,
                format!("local recipient {name:?} has no domain"),
            )
            .hint("map it in an aliases file (aliases = \"/etc/aliases\" in the config), set admin = \"you@example.com\" at the top of the config, or set local_domain in the account")),
        }
    }

    /// Qualifies a local sender name with `local_domain`.
    pub(crate) fn qualify_sender(&self, sender: &str) -> Option<String> {
        if sender.contains('@') {
            return Some(sender.to_string());
        }
        self.local_domain
            .as_ref()
            .map(|domain| format!("{sender}@{domain}"))
    }

    /// A local name in a header, qualified with `local_domain`, else the
    /// domain of the account's `from`; never expanded through aliases.
    pub(crate) fn qualify_header(&self, name: &str) -> Option<String> {
        if name.contains('@') {
            return Some(name.to_string());
        }
        self.local_domain
            .as_ref()
            .or(self.from_domain.as_ref())
            .map(|domain| format!("{name}@{domain}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALIASES: &str = "\
# /etc/aliases
postmaster: root
root: admin@example.com,
    ops@example.com
www-data:\troot
self: self, other@example.com
pipe: |/usr/bin/procmail
";

    fn rules(domain: Option<&str>) -> LocalRules {
        LocalRules {
            aliases: Some(Aliases::parse(ALIASES, Path::new("/etc/aliases")).unwrap()),
            local_domain: domain.map(str::to_string),
            ..LocalRules::default()
        }
    }

    #[test]
    fn aliases_expand_recursively_with_continuations() {
        assert_eq!(
            rules(None).expand("Postmaster").unwrap(),
            vec!["admin@example.com", "ops@example.com"]
        );
        assert_eq!(rules(None).expand("www-data").unwrap().len(), 2);
    }

    #[test]
    fn qualified_addresses_pass_through() {
        assert_eq!(
            rules(None).expand("a@b.example").unwrap(),
            vec!["a@b.example"]
        );
    }

    #[test]
    fn local_domain_qualifies_what_aliases_do_not_know() {
        assert_eq!(
            rules(Some("host.example")).expand("backup").unwrap(),
            vec!["backup@host.example"]
        );
        assert_eq!(
            rules(Some("host.example")).expand("self").unwrap(),
            vec!["self@host.example", "other@example.com"]
        );
    }

    #[test]
    fn unknown_local_name_names_the_three_fixes() {
        let err = rules(None).expand("backup").unwrap_err();
        assert_eq!(err.exit, Exit::NoUser);
        let text = err.to_string();
        assert!(
            text.contains("aliases") && text.contains("admin =") && text.contains("local_domain"),
            "{text}"
        );
    }

    #[test]
    fn pipes_and_loops_are_errors() {
        assert!(rules(None)
            .expand("pipe")
            .unwrap_err()
            .message
            .contains("only relays"));
        let looped = LocalRules {
            aliases: Some(Aliases::parse("a: b\nb: a\n", Path::new("x")).unwrap()),
            ..LocalRules::default()
        };
        assert!(looped.expand("a").unwrap_err().message.contains("loop"));
    }

    #[test]
    fn default_entry_catches_all() {
        let rules = LocalRules {
            aliases: Some(Aliases::parse("default: me@example.com\n", Path::new("x")).unwrap()),
            admin: Some("admin@example.com".into()),
            ..LocalRules::default()
        };
        assert_eq!(rules.expand("anyone").unwrap(), vec!["me@example.com"]);
    }

    #[test]
    fn admin_gets_what_no_alias_maps_before_local_domain() {
        let rules = LocalRules {
            admin: Some("admin@example.org".into()),
            ..rules(Some("host.example"))
        };
        assert_eq!(rules.expand("backup").unwrap(), ["admin@example.org"]);
        assert_eq!(
            rules.expand("root").unwrap(),
            ["admin@example.com", "ops@example.com"]
        );
        assert_eq!(
            rules.expand("self").unwrap(),
            ["admin@example.org", "other@example.com"]
        );
    }

    #[test]
    fn headers_are_qualified_never_expanded() {
        let rules = LocalRules {
            from_domain: Some("example.com".into()),
            ..rules(None)
        };
        assert_eq!(rules.qualify_header("root").unwrap(), "root@example.com");
        let rules = LocalRules {
            local_domain: Some("host.example".into()),
            ..rules
        };
        assert_eq!(rules.qualify_header("root").unwrap(), "root@host.example");
        assert_eq!(LocalRules::default().qualify_header("root"), None);
    }
}
