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

use super::{ControlError, ImpairArgs, Proxy};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::future::Future;
use std::sync::Arc;

/// Serves the API on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    proxy: Arc<Proxy>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/stats", get(stats))
        .route("/impairments", get(impairments).post(change).delete(clear))
        .with_state(proxy);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
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
