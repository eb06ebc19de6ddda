//! The admin API of a fleet, on its own plain-HTTP listener on a loopback address of its own
//! (never on a registry's hostname, so clients under test cannot reach it by accident).
//! `RunningFleet::admin_url()` says where; `fake-registry serve --config` prints it in its
//! ready line (`"admin"`).
//!
//! | request | answer |
//! |---|---|
//! | `GET /_regcompat/journal[?since=SEQ][&registry=NAME][&format=har]` | `{"mark":N,"entries":[…]}`: entries after `SEQ` (of registry `NAME`); `mark` is the last sequence number so far. `format=har`: the same entries as HTTP Archive 1.2 |
//! | `POST /_regcompat/reset` | clears the journal and the fault rules → `{"reset":["journal","faults"]}` |
//! | `GET /_regcompat/faults` | the rules with their counters (`seen`, `applied`, `seed`) |
//! | `POST /_regcompat/faults` | adds a rule (JSON, see [`crate::fault`]) → 201 `{"id":…}`; 400 `{"error":…}` when invalid |
//! | `DELETE /_regcompat/faults` | removes every rule → 204 |
//! | `DELETE /_regcompat/faults/ID` | removes one rule → 204 (404 if none has that id) |
//!
//! Every export comes from the journal, where secrets were replaced by labels when each entry
//! was recorded: nothing here can print a credential.

use crate::fault::{FaultConfig, Faults};
use crate::journal::{Entry, Journal, har_of};
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::response::Response;
use axum::routing::{delete, get, post};
use http::{HeaderValue, StatusCode, header};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

pub struct AdminState {
    pub journal: Arc<Journal>,
    pub faults: Arc<Faults>,
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
            let entries = serde_json::to_value(selected(&state, &q)).unwrap_or_default();
            json_response(StatusCode::OK, &json!({"mark": mark, "entries": entries}))
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
