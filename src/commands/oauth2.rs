//! `postie oauth2 login | status`: sign an OAuth2 account in once, and
//! show what its token file says (never a token).

use std::time::Duration;

use crate::cli::args::{OAuth2Cli, OAuth2Command};
use crate::config::file::ConfigFile;
use crate::exit::{Error, Result};
use crate::oauth2::provider::{now, Setup};
use crate::oauth2::{grant, store};
use crate::output::{messages, stdout};
use crate::plan::secret::{client_secret, PASSWORD_CMD_DEADLINE};

pub(crate) fn run(cli: OAuth2Cli) -> Result<()> {
    let config = ConfigFile::load(cli.config.as_deref())?;
    let (name, account) = config.select(cli.account.as_deref(), None)?;
    let shown = name.as_deref().unwrap_or("[defaults]");
    if !account.is_oauth2() {
        return Err(
            Error::config(format!("account {shown} is not an OAuth2 account"))
                .hint("set oauth2_provider (microsoft, google) or oauth2_token_url in the account"),
        );
    }
    let setup = Setup::of(&account, name.as_deref())?;
    match cli.command {
        OAuth2Command::Login { browser } => login(&setup, browser),
        OAuth2Command::Status => status(&setup),
    }
}

fn login(setup: &Setup, browser: bool) -> Result<()> {
    let secret = client_secret(&setup.provider, PASSWORD_CMD_DEADLINE)?;
    // The URL and the code are for the person at the terminal; stdout may
    // be a script's, so they go with the other lines people read.
    let show = |text: &str| eprintln!("{text}");
    let stored = if browser || setup.provider.browser_only {
        grant::browser(setup, secret.as_deref(), &show)?
    } else {
        grant::device(setup, secret.as_deref(), &show)?
    };
    messages::said(format_args!(
        "signed in: account {}'s token is in {}{}",
        setup.account,
        setup.store.display(),
        if stored.refresh_token.is_some() {
            ""
        } else {
            " (without a refresh token: sign in again when it expires)"
        }
    ));
    Ok(())
}

fn status(setup: &Setup) -> Result<()> {
    let mut text = format!(
        "account: {}\nprovider: {}\ntoken file: {}\n",
        setup.account,
        setup.provider.name,
        setup.store.display()
    );
    match store::read(&setup.store)? {
        None => text.push_str(&format!(
            "scopes: {}\nsigned in: no (run `postie oauth2 login --account {}`)\n",
            setup.provider.scopes, setup.account
        )),
        Some(stored) => {
            let now = now();
            let expiry = if stored.expires_at > now {
                format!("in {}", human(Duration::from_secs(stored.expires_at - now)))
            } else {
                format!(
                    "{} ago{}",
                    human(Duration::from_secs(now - stored.expires_at)),
                    if stored.refresh_token.is_some() {
                        " (refreshed at the next send)"
                    } else {
                        ""
                    }
                )
            };
            text.push_str(&format!(
                "scopes: {}\naccess token expires: {expiry} (at {} seconds since the epoch)\nrefresh token: {}\n",
                // As the provider answered them: escaped, like a server's reply.
                crate::smtp::reply::escape(stored.scopes.as_bytes()),
                stored.expires_at,
                if stored.refresh_token.is_some() { "stored" } else { "none" }
            ));
        }
    }
    stdout::write(text.as_bytes())
}

/// "1 h 5 min", "42 s".
fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}
