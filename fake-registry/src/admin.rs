//! The admin API of a fleet, on its own plain-HTTP listener on a loopback address of its own
//! (never on a registry's hostname, so clients under test cannot reach it by accident).
//! `RunningFleet::admin_url()` says where; `fake-registry serve --config` prints it in its
//! ready line (`"admin"`).
//!
//! | request | answer |
//! |---|---|
//! | `GET /_regcompat/journal[?since=SEQ][&registry=NAME][&format=har]` | `{"mark":N,"dropped":D,"entries":[…]}`: entries after `SEQ` (of registry `NAME`); `mark` is the last sequence number so far, `dropped` how many of the oldest entries the journal's bounds (entries, bytes) evicted since the last reset. `format=har`: the same entries as HTTP Archive 1.2 |
//! | `POST /_regcompat/reset` | clears the journal and the fault rules → `{"reset":["journal","faults"]}` |
//! | `GET /_regcompat/faults` | the rules with their counters (`seen`, `applied`, `seed`) |
//! | `POST /_regcompat/faults` | adds a rule (JSON, see [`crate::fault`]) → 201 `{"id":…}`; 400 `{"error":…}` when invalid |
//! | `DELETE /_regcompat/faults` | removes every rule → 204 |
//! | `DELETE /_regcompat/faults/ID` | removes one rule → 204 (404 if none has that id) |
//!
//! Only its own `Host` (its address or `localhost`, with the port) is answered (403
//! otherwise); writes from another `Origin` are refused (403) and `POST` bodies must be
//! `Content-Type: application/json` (415) — no web page can read the journal by DNS
//! rebinding or reset and inject faults with a cross-origin form.
//!
//! Every export comes from the journal, where secrets were replaced by labels when each entry
//! was recorded: nothing here can print a credential.

use crate::fault::{FaultConfig, Faults};
use crate::journal::{Entry, Journal, har_of};
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{delete, get, post};
use http::{HeaderValue, Method, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

pub struct AdminState {
    pub journal: Arc<Journal>,
    pub faults: Arc<Faults>,
    /// The admin listener's own address: the only `Host` (with `localhost`) it answers.
    pub addr: SocketAddr,
}

impl AdminState {
    /// The `Host` values naming this listener: its address, or `localhost`, with its port.
    fn is_own_host(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        let port = self.addr.port();
        let ip = match self.addr.ip() {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => format!("[{v6}]"),
        };
        [ip.as_str(), "localhost"]
            .iter()
            .any(|name| host == format!("{name}:{port}") || (port == 80 && host == *name))
    }

    /// `Origin` of a page served by this listener (`http://host:port`).
    fn is_own_origin(&self, origin: &str) -> bool {
        origin
            .strip_prefix("http://")
            .is_some_and(|host| self.is_own_host(host))
    }
}

/// The admin API's guard, before any handler:
/// - `Host` must name the listener (its loopback address or `localhost`, with the port),
///   else 403: a DNS-rebound name cannot reach the journal;
/// - a write (`POST`, `DELETE`…) whose `Origin` is another origin is refused (403), and
///   `Sec-Fetch-Site: cross-site`/`same-site` too: no cross-origin page can reset or inject;
/// - a `POST` body must be `Content-Type: application/json` (415), which a browser cannot
///   send cross-origin without a CORS preflight this API never answers.
async fn guard(
    State(state): State<Arc<AdminState>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let headers = req.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    if !host.as_deref().is_some_and(|h| state.is_own_host(h)) {
        return error(
            StatusCode::FORBIDDEN,
            format!(
                "Host {:?} is not this admin listener ({})",
                host.unwrap_or_default(),
                state.addr
            ),
        );
    }
    let method = req.method().clone();
    let write = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    if write {
        if let Some(origin) = headers.get(header::ORIGIN) {
            let origin = origin.to_str().unwrap_or("");
            if !state.is_own_origin(origin) {
                return error(
                    StatusCode::FORBIDDEN,
                    format!("cross-origin write refused (Origin {origin:?})"),
                );
            }
        }
        let site = headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none");
        if !matches!(site, "none" | "same-origin") {
            return error(
                StatusCode::FORBIDDEN,
                format!("cross-origin write refused (Sec-Fetch-Site {site:?})"),
            );
        }
    }
    if method == Method::POST {
        let content_type = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let is_json = content_type.is_some_and(|ct| {
            ct.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
        let has_body = headers.contains_key(header::TRANSFER_ENCODING)
            || headers
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|l| l.trim() != "0");
        if !is_json && (content_type.is_some() || has_body) {
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "POST bodies must be Content-Type: application/json",
            );
        }
    }
    next.run(req).await
}

pub fn router(state: Arc<AdminState>) -> axum::Router {
    axum::Router::new()
        .route("/_regcompat/journal", get(journal))
        .route("/_regcompat/reset", post(reset))
        .route(
            "/_regcompat/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/_regcompat/faults/{id}", delete(remove_fault))
        .fallback(|| async {
            json_response(
                StatusCode::NOT_FOUND,
                &json!({"error": "no such admin endpoint"}),
            )
        })
        .layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

fn json_response(status: StatusCode, value: &Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    json_response(status, &json!({"error": message.into()}))
}

#[derive(Debug, Deserialize)]
struct JournalQuery {
    #[serde(default)]
    since: u64,
    registry: Option<String>,
    format: Option<String>,
}

fn selected(state: &AdminState, q: &JournalQuery) -> Vec<Entry> {
    let mut entries = state.journal.since(q.since);
    if let Some(name) = &q.registry {
        entries.retain(|e| &e.registry == name);
    }
    entries
}

async fn journal(State(state): State<Arc<AdminState>>, Query(q): Query<JournalQuery>) -> Response {
    match q.format.as_deref() {
        None | Some("json") => {
            let mark = state.journal.mark();
            let dropped = state.journal.dropped();
            let entries = serde_json::to_value(selected(&state, &q)).unwrap_or_default();
            json_response(
                StatusCode::OK,
                &json!({"mark": mark, "dropped": dropped, "entries": entries}),
            )
        }
        Some("har") => json_response(StatusCode::OK, &har_of(selected(&state, &q))),
        Some(other) => error(
            StatusCode::BAD_REQUEST,
            format!("unknown format {other:?}: json or har"),
        ),
    }
}

async fn reset(State(state): State<Arc<AdminState>>) -> Response {
    state.journal.clear();
    state.faults.clear();
    json_response(StatusCode::OK, &json!({"reset": ["journal", "faults"]}))
}

async fn list_faults(State(state): State<Arc<AdminState>>) -> Response {
    json_response(
        StatusCode::OK,
        &serde_json::to_value(state.faults.list()).unwrap_or_default(),
    )
}

async fn add_fault(State(state): State<Arc<AdminState>>, body: Bytes) -> Response {
    let config: FaultConfig = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => return error(StatusCode::BAD_REQUEST, format!("invalid fault rule: {e}")),
    };
    match state.faults.add(config) {
        Ok(id) => json_response(StatusCode::CREATED, &json!({"id": id})),
        Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
    }
}

async fn clear_faults(State(state): State<Arc<AdminState>>) -> Response {
    state.faults.clear();
    empty(StatusCode::NO_CONTENT)
}

async fn remove_fault(State(state): State<Arc<AdminState>>, Path(id): Path<String>) -> Response {
    if state.faults.remove(&id) {
        empty(StatusCode::NO_CONTENT)
    } else {
        error(StatusCode::NOT_FOUND, format!("no fault rule {id:?}"))
    }
}

fn empty(status: StatusCode) -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    r
}
