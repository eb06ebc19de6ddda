//! The admin API of a fleet, on its own plain-HTTP listener on 127.0.0.1 (never on a
//! registry's hostname, so clients under test cannot reach it by accident):
//!
//! | request | answer |
//! |---|---|
//! | `GET /_regcompat/journal[?since=SEQ][&registry=NAME]` | `{"mark":N,"entries":[…]}`: entries after `SEQ`, of host `NAME` and its auxiliary hosts (`NAME.realm`, `NAME.storage`); `mark` is the last sequence number so far |
//! | `GET /_regcompat/journal.har[?since=SEQ][&registry=NAME]` | the same entries as HTTP Archive 1.2 |
//! | `POST /_regcompat/reset[?storage=true]` | clears the journal and the fault rules; `storage=true` is refused with 501 (storage cannot be emptied in place: restart the fleet) |
//! | `GET /_regcompat/faults` | the rules with their counters |
//! | `POST /_regcompat/faults` | adds a rule (JSON, see [`crate::fault`]) → 201 `{"id":…}`; 400 with the reason when invalid |
//! | `DELETE /_regcompat/faults` | removes every rule |
//! | `DELETE /_regcompat/faults/ID` | removes one rule (404 if none has that id) |

use crate::api::Registry;
use crate::fault::{FaultConfig, Faults};
use crate::journal::{Entry, Journal, har_of};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

pub struct AdminState {
    pub journal: Arc<Journal>,
    pub faults: Arc<Faults>,
    pub registries: Vec<(String, Registry)>,
}

pub fn router(state: Arc<AdminState>) -> axum::Router {
    axum::Router::new()
        .route("/_regcompat/journal", get(journal))
        .route("/_regcompat/journal.har", get(journal_har))
        .route("/_regcompat/reset", post(reset))
        .route(
            "/_regcompat/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/_regcompat/faults/{id}", delete(remove_fault))
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                Json(json!({"error": "no such admin endpoint"})),
            )
        })
        .with_state(state)
}

#[derive(Debug, Deserialize)]
struct JournalQuery {
    #[serde(default)]
    since: u64,
    registry: Option<String>,
}

fn selected(state: &AdminState, q: &JournalQuery) -> Vec<Entry> {
    let mut entries = state.journal.since(q.since);
    if let Some(name) = &q.registry {
        let prefix = format!("{name}.");
        entries.retain(|e| &e.registry == name || e.registry.starts_with(&prefix));
    }
    entries
}

async fn journal(State(state): State<Arc<AdminState>>, Query(q): Query<JournalQuery>) -> Response {
    let mark = state.journal.mark();
    Json(json!({"mark": mark, "entries": selected(&state, &q)})).into_response()
}

async fn journal_har(
    State(state): State<Arc<AdminState>>,
    Query(q): Query<JournalQuery>,
) -> Response {
    Json(har_of(selected(&state, &q))).into_response()
}

#[derive(Debug, Deserialize)]
struct ResetQuery {
    #[serde(default)]
    storage: bool,
}

async fn reset(State(state): State<Arc<AdminState>>, Query(q): Query<ResetQuery>) -> Response {
    if q.storage {
        return (
            StatusCode::NOT_IMPLEMENTED,
            Json(json!({"error": "storage cannot be emptied in place; restart the fleet (nothing was reset)"})),
        )
            .into_response();
    }
    state.journal.clear();
    state.faults.clear();
    Json(json!({"reset": ["journal", "faults"], "registries": state.registries.len()}))
        .into_response()
}

async fn list_faults(State(state): State<Arc<AdminState>>) -> Response {
    Json(state.faults.list()).into_response()
}

async fn add_fault(State(state): State<Arc<AdminState>>, body: axum::body::Bytes) -> Response {
    let config: FaultConfig = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": format!("invalid fault rule: {e}")})),
            )
                .into_response();
        }
    };
    match state.faults.add(config) {
        Ok(id) => (StatusCode::CREATED, Json(json!({"id": id}))).into_response(),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": e.to_string()})),
        )
            .into_response(),
    }
}

async fn clear_faults(State(state): State<Arc<AdminState>>) -> Response {
    state.faults.clear();
    StatusCode::NO_CONTENT.into_response()
}

async fn remove_fault(State(state): State<Arc<AdminState>>, Path(id): Path<String>) -> Response {
    if state.faults.remove(&id) {
        StatusCode::NO_CONTENT.into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!("no fault rule {id:?}")})),
        )
            .into_response()
    }
}
