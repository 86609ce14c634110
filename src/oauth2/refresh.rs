//! The refresh at send time: the access token, renewed under the store's
//! lock when it is expired or about to be.

use std::time::Duration;

use crate::exit::Result;
use crate::oauth2::provider::{now, Setup};
use crate::oauth2::{grant, http, store};

/// An access token that expires within this is refreshed before use: a
/// message of some size may take minutes to upload after AUTH.
pub(crate) const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// The access token for a send: the stored one while it is valid for
/// [`REFRESH_MARGIN`] more, else a refreshed one. The refresh holds the
/// store's lock and reads the store again under it: another postie (a
/// dozen cron jobs in one minute) may have refreshed meanwhile, and as
/// providers rotate refresh tokens, a second refresh with the old one
/// would be `invalid_grant`. `client_secret` runs the secret's command,
/// only when a refresh is needed.
pub(crate) fn access_token(
    setup: &Setup,
    client_secret: impl FnOnce() -> Result<Option<String>>,
) -> Result<String> {
    let fresh = |stored: &store::Stored| stored.expires_at > now() + REFRESH_MARGIN.as_secs();
    let Some(stored) = store::read(&setup.store)? else {
        return Err(setup.login_again("no token is stored"));
    };
    if fresh(&stored) {
        return Ok(stored.access_token);
    }
    let _lock = store::lock(&setup.store)?;
    let Some(stored) = store::read(&setup.store)? else {
        return Err(setup.login_again("no token is stored"));
    };
    if fresh(&stored) {
        return Ok(stored.access_token);
    }
    let Some(refresh_token) = stored.refresh_token.clone() else {
        return Err(setup.login_again("the token expired and there is no refresh token"));
    };
    let secret = client_secret()?;
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token.as_str()),
        ("client_id", setup.provider.client_id.as_str()),
    ];
    if let Some(secret) = &secret {
        form.push(("client_secret", secret));
    }
    // Microsoft's v2 endpoint wants the scopes again (RFC 6749 §6 allows
    // them: the same as granted); others take the grant's.
    if setup.provider.name == "microsoft" {
        form.push(("scope", setup.provider.scopes.as_str()));
    }
    let reply = http::post_form(&setup.provider.token_url, &form)
        .map_err(|failure| failure.error(setup, "refreshing the access token"))?;
    let token = grant::Token::from_reply(reply)
        .map_err(|failure| failure.error(setup, "refreshing the access token"))?;
    let renewed = store::Stored {
        provider: stored.provider,
        scopes: token.scope.clone().unwrap_or(stored.scopes),
        access_token: token.access_token.clone(),
        expires_at: token.expires_at,
        // A provider that does not rotate sends none: keep the old one.
        refresh_token: token.refresh_token.or(Some(refresh_token)),
    };
    store::write(&setup.store, &renewed)?;
    Ok(token.access_token)
}
