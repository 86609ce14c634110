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
        Ok(Provider {
            name: provider,
            client_id,
            client_secret_cmd: account.oauth2_client_secret_cmd.clone(),
            token_url,
            device_url: account.oauth2_device_url.clone().or(device),
            auth_url: account.oauth2_auth_url.clone().or(auth),
            scopes: account
                .oauth2_scopes
                .clone()
                .unwrap_or_else(|| scopes.to_string()),
            browser_only,
        })
    }
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
