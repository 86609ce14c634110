//! The provider's HTTP endpoints: form-encoded POSTs (RFC 6749 §4.1.3,
//! RFC 8628 §3.1) answered with JSON, through ureq. Every exchange is
//! bounded: 30 s in all, a 64 KiB body, no redirects (a token endpoint
//! that redirects a POST holding a refresh token is misconfigured).

use std::time::Duration;

use ureq::tls::{RootCerts, TlsConfig, TlsProvider};

use crate::exit::{Cause, Error, Exit};
use crate::oauth2::provider::Setup;

const TIMEOUT: Duration = Duration::from_secs(30);
const BODY_LIMIT: u64 = 64 * 1024;

/// A provider's answer: its status and its JSON object.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) json: serde_json::Value,
}

/// Without the JSON, which holds the access and refresh tokens.
impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reply")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl Reply {
    /// A string member of the answer.
    pub(crate) fn text(&self, key: &str) -> Option<&str> {
        self.json.get(key).and_then(serde_json::Value::as_str)
    }
}

/// Why an exchange gave no usable answer.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Not reached, timed out, or a 5xx: try again later (75).
    Unreachable(String),
    /// The provider refused the grant (400/401 with `invalid_grant` and
    /// the like): only a new login helps (77).
    Refused(String),
    /// An answer that is not what RFC 6749 describes (76).
    Malformed(String),
}

impl Failure {
    /// The exit error for `doing` on `setup`'s account.
    pub(crate) fn error(self, setup: &Setup, doing: &str) -> Error {
        let url = &setup.provider.token_url;
        match self {
            Failure::Unreachable(why) => Error::new(
                Exit::TempFail,
                format!("OAuth2 {doing} for account {}: {url}: {why}", setup.account),
            )
            .hint("the provider could not be reached; try again later")
            .cause(Cause::LocalSetup),
            Failure::Refused(why) => {
                setup.login_again(format!("{doing}: the provider refused: {why}"))
            }
            Failure::Malformed(why) => Error::new(
                Exit::Protocol,
                format!("OAuth2 {doing} for account {}: {url}: {why}", setup.account),
            )
            .hint("check oauth2_token_url")
            .cause(Cause::LocalSetup),
        }
    }
}

/// `direct`: no proxy from the environment (ALL_PROXY, HTTP_PROXY...): a
/// plain-http endpoint is allowed only because it is on this machine, and
/// a proxy would carry its refresh token and client secret off it in
/// clear text.
fn agent(direct: bool) -> ureq::Agent {
    // native-tls is OpenSSL here, with the system's trust store.
    let tls = TlsConfig::builder()
        .provider(TlsProvider::NativeTls)
        .root_certs(RootCerts::PlatformVerifier)
        .build();
    let mut config = ureq::Agent::config_builder();
    if direct {
        config = config.proxy(None);
    }
    config
        .http_status_as_error(false)
        .timeout_global(Some(TIMEOUT))
        .max_redirects(0)
        .tls_config(tls)
        .user_agent(concat!("postie/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent()
}

/// POSTs `form` to `url` and reads the JSON answer. A 4xx answer is a
/// [`Reply`] when it is JSON (an OAuth2 error object, RFC 6749 §5.2, which
/// the device flow reads), a [`Failure::Refused`] otherwise.
pub(crate) fn post_form(url: &str, form: &[(&str, &str)]) -> Result<Reply, Failure> {
    let direct = !url.to_ascii_lowercase().starts_with("https://");
    let response = agent(direct)
        .post(url)
        .header("Accept", "application/json")
        .send_form(form.iter().copied())
        .map_err(|err| Failure::Unreachable(describe(&err)))?;
    let status = response.status().as_u16();
    if status >= 500 {
        return Err(Failure::Unreachable(format!(
            "the provider answered {status}"
        )));
    }
    let body = response
        .into_body()
        .with_config()
        .limit(BODY_LIMIT)
        .read_to_string()
        .map_err(|err| Failure::Unreachable(describe(&err)))?;
    match serde_json::from_str::<serde_json::Value>(&body) {
        Ok(json) if json.is_object() => Ok(Reply { status, json }),
        _ if (400..500).contains(&status) => Err(Failure::Refused(format!(
            "HTTP {status} without an OAuth2 error"
        ))),
        _ => Err(Failure::Malformed(format!(
            "HTTP {status} with an answer that is not a JSON object"
        ))),
    }
}

/// ureq's error in a line, never with a request body (which holds the
/// refresh token): ureq's errors name only the URL and the cause.
fn describe(err: &ureq::Error) -> String {
    match err {
        ureq::Error::Timeout(_) => format!("no answer within {} s", TIMEOUT.as_secs()),
        other => other.to_string(),
    }
}
