//! OAuth2 for SMTP AUTH: the provider an account names, the token store,
//! the grants that obtain a token once (`postie oauth2 login`) and the
//! refresh that every send does when the access token is (nearly) expired.
//!
//! Belongs here: the provider presets, the HTTP exchanges with the token,
//! device-authorization and (loopback) authorization endpoints, the token
//! file. Not here: running the client secret's command and deciding when a
//! token is needed (`plan::secret`), printing (`commands::oauth2`), AUTH
//! itself (`smtp`).

pub(crate) mod grant;
pub(crate) mod http;
pub(crate) mod provider;
pub(crate) mod refresh;
pub(crate) mod store;
