//! `rudp proxy --control ADDR`: a small HTTP/JSON API that changes the link
//! while the proxy runs, for scripts and tests in any language
//! (docs/proxy.md). It is a thin binding of [`Proxy::update`] and
//! [`Proxy::stats`], which are HTTP-free; only the command line uses it.
//!
//! | request | answer |
//! |---|---|
//! | `GET /stats` | the statistics, as `--stats-json` writes them |
//! | `GET /impairments` | every setting by its flag name without dashes ([`ImpairArgs::settings`]) |
//! | `POST /impairments` with a JSON object of settings | the new settings; the others stay; all or nothing |
//! | `DELETE /impairments` | removes every impairment; the new settings |
//!
//! A bad name, value or body is a `400` with `{"error": "..."}` and
//! changes nothing.
//!
//! Every web page the user opens can send requests to a loopback port, so
//! the API answers only requests that a page cannot make (docs/security.md):
//! a `Host` that names the address it listens on (or `localhost` with its
//! port), which a DNS-rebinding page cannot forge; no `Origin` but its own
//! and no cross-site `Sec-Fetch-Site`; writes with `Content-Type:
//! application/json`, which a page can send only after a CORS preflight
//! that is never granted; and, with `--control-token`, `Authorization:
//! Bearer TOKEN`. Anything else is a `403` that changes nothing. The
//! listener bounds and times out connections (`control_listener`).

use super::control_listener::{BoundedListener, CONTROL_IDLE_TIMEOUT, MAX_CONTROL_CONNECTIONS};
use super::{ControlError, ImpairArgs, Proxy};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

/// Who may use the API: the `Host` values that name it, and the token.
#[derive(Debug, Clone)]
pub struct Access {
    /// `Host` header values accepted: the listening address and
    /// `localhost` with its port.
    hosts: Vec<String>,
    /// SHA-256 of the token, if one is required: compared as digests, so
    /// the comparison's time says nothing about the token.
    token: Option<[u8; 32]>,
}

impl Access {
    /// Requests for the API listening on `addr`, with `token` if given.
    pub fn new(addr: SocketAddr, token: Option<&str>) -> Self {
        Self {
            hosts: vec![addr.to_string(), format!("localhost:{}", addr.port())],
            token: token.map(|t| Sha256::digest(t.as_bytes()).into()),
        }
    }

    /// Why a request may not be served, if it may not.
    fn refusal(&self, method: &Method, headers: &HeaderMap) -> Option<String> {
        let text = |name: header::HeaderName| {
            headers
                .get(name)
                .map(|v| v.to_str().unwrap_or("(not text)").to_ascii_lowercase())
        };
        let host = text(header::HOST).unwrap_or_default();
        if !self.hosts.contains(&host) {
            return Some(format!(
                "Host '{host}' is not this API's address (expected {})",
                self.hosts.join(" or ")
            ));
        }
        if let Some(origin) = text(header::ORIGIN) {
            if !self.hosts.iter().any(|h| origin == format!("http://{h}")) {
                return Some(format!(
                    "requests from the web origin '{origin}' are refused"
                ));
            }
        }
        if let Some(site) = text(header::HeaderName::from_static("sec-fetch-site")) {
            if site != "same-origin" && site != "none" {
                return Some(format!("cross-site requests ({site}) are refused"));
            }
        }
        // A POST carries the change; DELETE has no body, and a page can send
        // one only after a preflight, which is never granted.
        let json = text(header::CONTENT_TYPE)
            .is_some_and(|t| t.split(';').next().map(str::trim) == Some("application/json"));
        if *method == Method::POST && !json {
            return Some("a change needs Content-Type: application/json".into());
        }
        if let Some(want) = &self.token {
            let given = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(|t| <[u8; 32]>::from(Sha256::digest(t.trim().as_bytes())));
            if given != Some(*want) {
                return Some(
                    "a valid token is needed: Authorization: Bearer TOKEN (rudp proxy ctl --token)"
                        .into(),
                );
            }
        }
        None
    }
}

/// Serves the API on `listener` until `shutdown` completes, to requests
/// that `access` allows.
pub async fn serve(
    listener: tokio::net::TcpListener,
    proxy: Arc<Proxy>,
    access: Access,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/stats", get(stats))
        .route("/impairments", get(impairments).post(change).delete(clear))
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(access),
            guard,
        ))
        .with_state(proxy);
    let listener = BoundedListener::new(listener, MAX_CONTROL_CONNECTIONS, CONTROL_IDLE_TIMEOUT);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Refuses, with a `403` and the reason, what a web page could send.
async fn guard(State(access): State<Arc<Access>>, request: Request, next: Next) -> Response {
    match access.refusal(request.method(), request.headers()) {
        Some(why) => (StatusCode::FORBIDDEN, Json(json!({ "error": why }))).into_response(),
        None => next.run(request).await,
    }
}

async fn stats(State(proxy): State<Arc<Proxy>>) -> Json<super::ProxyStats> {
    Json(proxy.stats())
}

async fn impairments(State(proxy): State<Arc<Proxy>>) -> Response {
    answer(proxy.impairments().await)
}

/// The body is read as text and parsed here, so that every bad body gets
/// the same `400` with a message (axum's own rejections differ).
async fn change(State(proxy): State<Arc<Proxy>>, body: String) -> Response {
    let settings = match serde_json::from_str::<Value>(&body) {
        Ok(Value::Object(m)) => m,
        Ok(other) => return bad(format!("expected a JSON object of settings, got {other}")),
        Err(e) => return bad(format!("the body is not JSON: {e}")),
    };
    answer(
        proxy
            .update(move |current| {
                let mut next = current.clone();
                next.apply_json(&settings)?;
                Ok(next)
            })
            .await,
    )
}

async fn clear(State(proxy): State<Arc<Proxy>>) -> Response {
    answer(proxy.update(|_| Ok(ImpairArgs::new())).await)
}

fn answer(result: Result<ImpairArgs, ControlError>) -> Response {
    match result {
        Ok(args) => Json(Value::Object(args.settings())).into_response(),
        Err(ControlError::Rejected(e)) => bad(e),
        Err(e @ ControlError::Stopped) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": e.to_string() })),
        )
            .into_response(),
    }
}

fn bad(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
}
