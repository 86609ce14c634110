//! The provider an OAuth2 account names (the `microsoft` and `google`
//! presets, or the account's endpoints) and the account's setup.

use std::path::PathBuf;

use crate::config::file::Account;
use crate::exit::{Cause, Error, Exit, Result};
use crate::oauth2::store;

/// Where an account gets its tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Provider {
    /// `microsoft`, `google`, or the name the config gives.
    pub(crate) name: String,
    pub(crate) client_id: String,
    /// The command that prints the client secret, when there is one.
    pub(crate) client_secret_cmd: Option<String>,
    pub(crate) token_url: String,
    pub(crate) device_url: Option<String>,
    pub(crate) auth_url: Option<String>,
    /// Space-separated (RFC 6749 §3.3).
    pub(crate) scopes: String,
    /// Google: its device flow does not allow the Gmail scope, so login
    /// always takes the browser.
    pub(crate) browser_only: bool,
}

const MICROSOFT_SCOPES: &str = "https://outlook.office.com/SMTP.Send offline_access";
const GOOGLE_SCOPES: &str = "https://mail.google.com/";

impl Provider {
    /// The provider of an OAuth2 account (see [`Account::is_oauth2`]):
    /// the preset's endpoints and scopes, each replaced by the account's
    /// own key where it has one.
    pub(crate) fn of(account: &Account, name: &str) -> Result<Provider> {
        let provider = account
            .oauth2_provider
            .clone()
            .unwrap_or_else(|| "custom".to_string());
        let client_id = account.oauth2_client_id.clone().ok_or_else(|| {
            Error::config(format!("the OAuth2 account {name} has no oauth2_client_id")).hint(
                "set oauth2_client_id to the application (client) ID registered with the provider",
            )
        })?;
        let (token, device, auth, scopes, browser_only) = match provider.as_str() {
            "microsoft" => {
                let tenant = account.oauth2_tenant.as_deref().unwrap_or("common");
                let base = format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0");
                (
                    Some(format!("{base}/token")),
                    Some(format!("{base}/devicecode")),
                    Some(format!("{base}/authorize")),
                    MICROSOFT_SCOPES,
                    false,
                )
            }
            "google" => (
                Some("https://oauth2.googleapis.com/token".to_string()),
                None,
                Some("https://accounts.google.com/o/oauth2/v2/auth".to_string()),
                GOOGLE_SCOPES,
                true,
            ),
            _ => (None, None, None, "", false),
        };
        let token_url = account.oauth2_token_url.clone().or(token).ok_or_else(|| {
            Error::config(format!(
                "the OAuth2 account {name} (provider {provider:?}) has no oauth2_token_url"
            ))
            .hint("set oauth2_token_url, or oauth2_provider = \"microsoft\" or \"google\"")
        })?;
        if browser_only && account.oauth2_client_secret_cmd.is_none() {
            return Err(Error::config(format!(
                "the Google account {name} has no oauth2_client_secret_cmd"
            ))
            .hint("Google's Desktop clients have a secret: set oauth2_client_secret_cmd to a command that prints it"));
        }
        let device_url = account.oauth2_device_url.clone().or(device);
        let auth_url = account.oauth2_auth_url.clone().or(auth);
        for url in [Some(&token_url), device_url.as_ref(), auth_url.as_ref()]
            .into_iter()
            .flatten()
        {
            if !is_safe_url(url) {
                return Err(Error::config(format!(
                    "the OAuth2 account {name}'s endpoint {url:?} is not https://"
                ))
                .hint("tokens and client secrets go only over TLS, or to this machine (http://127.0.0.1)"));
            }
        }
        Ok(Provider {
            name: provider,
            client_id,
            client_secret_cmd: account.oauth2_client_secret_cmd.clone(),
            token_url,
            device_url,
            auth_url,
            scopes: account
                .oauth2_scopes
                .clone()
                .unwrap_or_else(|| scopes.to_string()),
            browser_only,
        })
    }
}

/// An endpoint that may be sent a refresh token or a client secret:
/// https, or plain http to this machine (a local helper, the tests).
fn is_safe_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("https://") {
        return true;
    }
    let Some(rest) = lower.strip_prefix("http://") else {
        return false;
    };
    // The whole authority, not a prefix of it: "http://127.0.0.1:80@evil/"
    // is evil's URL (user info before the "@").
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
        _ => authority,
    };
    ["127.0.0.1", "localhost", "[::1]"].contains(&host)
}

/// One account's OAuth2 setup: what the grants and the refresh need.
#[derive(Clone, Debug)]
pub(crate) struct Setup {
    /// The account's name, in the token file's name and in hints.
    pub(crate) account: String,
    pub(crate) provider: Provider,
    /// The token file.
    pub(crate) store: PathBuf,
}

impl Setup {
    pub(crate) fn of(account: &Account, name: Option<&str>) -> Result<Setup> {
        let name = name.unwrap_or("default").to_string();
        let provider = Provider::of(account, &name)?;
        let store = store::path(account.system, &name)?;
        Ok(Setup {
            account: name,
            provider,
            store,
        })
    }

    /// 77: the provider refused the stored grant; only a new login helps.
    pub(crate) fn login_again(&self, why: impl std::fmt::Display) -> Error {
        Error::new(
            Exit::NoPerm,
            format!("OAuth2 for account {}: {why}", self.account),
        )
        .hint(format!(
            "run `postie oauth2 login --account {}` again",
            self.account
        ))
        .cause(Cause::LocalSetup)
    }
}

/// Seconds since the epoch.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(keys: &str) -> Account {
        let text = format!("[accounts.a]\n{keys}");
        let config =
            crate::config::file::ConfigFile::parse(&text, std::path::Path::new("t.toml")).unwrap();
        config.select(Some("a"), None).unwrap().1
    }

    #[test]
    fn presets_fill_endpoints_and_scopes() {
        let ms = Provider::of(&account("oauth2_provider = \"microsoft\"\noauth2_client_id = \"c\"\noauth2_tenant = \"contoso.com\"\n"), "a").unwrap();
        assert_eq!(
            ms.token_url,
            "https://login.microsoftonline.com/contoso.com/oauth2/v2.0/token"
        );
        assert_eq!(
            ms.device_url.as_deref(),
            Some("https://login.microsoftonline.com/contoso.com/oauth2/v2.0/devicecode")
        );
        assert_eq!(
            ms.scopes,
            "https://outlook.office.com/SMTP.Send offline_access"
        );
        assert!(!ms.browser_only);
        let google = account("oauth2_provider = \"google\"\noauth2_client_id = \"c\"\n");
        let err = Provider::of(&google, "a").unwrap_err();
        assert!(err.message.contains("oauth2_client_secret_cmd"), "{err}");
        let google = account("oauth2_provider = \"google\"\noauth2_client_id = \"c\"\noauth2_client_secret_cmd = \"echo s\"\n");
        let google = Provider::of(&google, "a").unwrap();
        assert!(google.browser_only);
        assert_eq!(google.scopes, "https://mail.google.com/");
    }

    #[test]
    fn a_custom_provider_needs_a_token_url_over_tls_or_loopback() {
        let err = Provider::of(
            &account("oauth2_provider = \"corp\"\noauth2_client_id = \"c\"\n"),
            "a",
        )
        .unwrap_err();
        assert!(err.message.contains("oauth2_token_url"), "{err}");
        let err = Provider::of(
            &account("oauth2_token_url = \"http://idp.example/token\"\noauth2_client_id = \"c\"\n"),
            "a",
        )
        .unwrap_err();
        assert!(err.message.contains("not https"), "{err}");
        assert!(Provider::of(
            &account(
                "oauth2_token_url = \"http://127.0.0.1:8080/token\"\noauth2_client_id = \"c\"\n"
            ),
            "a"
        )
        .is_ok());
        for url in [
            "http://127.0.0.1:80@evil.example/token",
            "http://localhost:x@evil.example/token",
            "http://[::1]:1@evil.example/",
            "http://127.0.0.1.evil.example/token",
            "http://localhost\\@evil.example/",
            "ftp://127.0.0.1/",
        ] {
            assert!(!is_safe_url(url), "{url}");
        }
        for url in [
            "https://idp.example/token",
            "http://127.0.0.1:8080/token",
            "http://localhost/token",
            "http://[::1]:9/t?x=1",
            "HTTP://LOCALHOST:1",
        ] {
            assert!(is_safe_url(url), "{url}");
        }
    }

    #[test]
    fn a_password_on_an_oauth2_account_is_a_config_error() {
        let text = "[accounts.a]\noauth2_provider = \"microsoft\"\npassword = \"x\"\n";
        let config =
            crate::config::file::ConfigFile::parse(text, std::path::Path::new("t.toml")).unwrap();
        assert_eq!(
            config.select(Some("a"), None).unwrap_err().exit,
            Exit::Config
        );
    }
}
