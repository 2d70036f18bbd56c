//! Who may read what: an optional bearer token for `/api/*` (and, when
//! asked, `/metrics`). `/`, `/healthz` and `/readyz` stay open: the page
//! holds no data (it reads the API with the token the user gives it), and
//! probes must not need a secret.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Environment variable with the token when `[http] token` is not set.
pub const ENV_HTTP_TOKEN: &str = "PULSE_HTTP_TOKEN";

/// Shortest token accepted: a guessable secret is no protection.
pub const MIN_TOKEN_LEN: usize = 16;

/// The access rules of the HTTP endpoints.
#[derive(Clone, Default)]
pub struct Access {
    token: Option<Arc<str>>,
    /// `/metrics` needs the token too.
    pub metrics: bool,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token itself.
        f.debug_struct("Access")
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("metrics", &self.metrics)
            .finish()
    }
}

impl Access {
    /// Open endpoints (no token).
    pub fn open() -> Self {
        Self::default()
    }

    /// A token (from the configuration, else from `PULSE_HTTP_TOKEN`), or
    /// open when neither is set; an unusable token is an error that names
    /// where it came from, never the token.
    pub fn resolve(configured: Option<&str>, metrics: bool) -> Result<Self, String> {
        let (token, from) = match configured {
            Some(t) => (Some(t.to_owned()), "http.token"),
            None => (std::env::var(ENV_HTTP_TOKEN).ok(), ENV_HTTP_TOKEN),
        };
        let token = token.filter(|t| !t.is_empty());
        if let Some(t) = &token {
            if t.len() < MIN_TOKEN_LEN {
                return Err(format!(
                    "{from}: the token is {} characters long; use at least {MIN_TOKEN_LEN}",
                    t.len()
                ));
            }
            if !t.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(format!(
                    "{from}: the token may hold visible ASCII characters only (no spaces)"
                ));
            }
        }
        if metrics && token.is_none() {
            return Err(format!(
                "http.protect_metrics: needs a token (http.token or {ENV_HTTP_TOKEN})"
            ));
        }
        Ok(Self {
            token: token.map(Into::into),
            metrics,
        })
    }

    pub fn enabled(&self) -> bool {
        self.token.is_some()
    }

    fn admits(&self, request: &Request) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|given| same(given.trim().as_bytes(), token.as_bytes()))
    }
}

/// Equal in time independent of where the bytes differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Middleware: the request goes on with the token, else 401.
pub async fn require_token(State(access): State<Access>, request: Request, next: Next) -> Response {
    if access.admits(&request) {
        next.run(request).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a bearer token is needed: Authorization: Bearer <token>\n",
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_or_spaced_tokens_are_refused_without_showing_them() {
        let e = Access::resolve(Some("short-secret"), false).unwrap_err();
        assert!(
            e.contains("http.token") && e.contains("12 characters") && !e.contains("short-secret")
        );
        let e = Access::resolve(Some("a long secret with spaces"), false).unwrap_err();
        assert!(!e.contains("secret with"));
        assert!(Access::resolve(Some("0123456789abcdef"), true).is_ok());
        let a = Access::resolve(Some("0123456789abcdef"), false).unwrap();
        assert!(!format!("{a:?}").contains("0123"));
        assert!(same(b"abc", b"abc") && !same(b"abc", b"abd") && !same(b"abc", b"ab"));
    }
}
