//! One virtual registry: a hostname, a vendor profile in front of the core API, and the
//! journal every exchange is written to. The path of a request reads straight:
//! profile (authorize or serve a token endpoint) → core API → journal entry.

use crate::api::{Registry, route};
use crate::auth::scope::required_scope;
use crate::journal::{self, Entry, Journal};
use crate::profile::{Ctx, Profile};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

pub struct VirtualHost {
    /// The configured name (`acr`, `mirror`…): how journals and reports refer to it.
    pub name: String,
    /// `https://host[:port]` as clients address it; realms are built from it.
    pub base_url: String,
    pub registry: Registry,
    pub profile: Arc<dyn Profile>,
    pub journal: Arc<Journal>,
}

impl VirtualHost {
    pub fn router(self: Arc<Self>) -> axum::Router {
        axum::Router::new().fallback(handle).with_state(self)
    }

    pub async fn serve(&self, req: Request) -> Response {
        let started = Instant::now();
        let time = now_rfc3339();
        let (mut parts, body) = req.into_parts();
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .or_else(|| parts.uri.authority().map(|a| a.to_string()))
            .unwrap_or_default();
        let (method, path) = (parts.method.to_string(), parts.uri.path().to_owned());
        let query = parts.uri.query().map(str::to_owned);
        let request_headers = journal::request_headers(&parts.headers);
        // Kept for the leak check after the request is consumed (only this header matters).
        let mut presented = http::HeaderMap::new();
        if let Some(v) = parts.headers.get(header::AUTHORIZATION) {
            presented.insert(header::AUTHORIZATION, v.clone());
        }
        let mut ctx = Ctx {
            base_url: self.base_url.clone(),
            ..Ctx::default()
        };

        let is_api = path == "/v2" || path.starts_with("/v2/");
        let response = if is_api {
            let scope = route::parse(&path).and_then(|r| required_scope(&parts.method, &r));
            let mut r = match self
                .profile
                .authorize(&mut ctx, &parts, scope.as_ref())
                .await
            {
                Ok(()) => match self
                    .profile
                    .prepare(&mut ctx, &mut parts, &self.registry)
                    .await
                {
                    Ok(()) => self.registry.handle(Request::from_parts(parts, body)).await,
                    Err(answered) => answered,
                },
                Err(denied) => denied,
            };
            r.headers_mut().insert(
                "Docker-Distribution-Api-Version",
                HeaderValue::from_static("registry/2.0"),
            );
            r
        } else {
            match self.profile.endpoint(&mut ctx, &parts, body).await {
                Some(r) => r,
                None => (StatusCode::NOT_FOUND, "404 page not found\n").into_response(),
            }
        };

        let leak = crate::leak::detect(&self.journal.redactor, &presented, &ctx.form, &self.name);
        self.journal.record(Entry {
            seq: 0,
            time,
            duration_ms: started.elapsed().as_secs_f64() * 1000.0,
            registry: self.name.clone(),
            host,
            method,
            path,
            query,
            request_headers,
            auth: ctx.auth,
            form: ctx.form,
            status: response.status().as_u16(),
            response_headers: journal::response_headers(response.headers()),
            notes: ctx.notes,
            leak,
        });
        response
    }
}

async fn handle(State(vhost): State<Arc<VirtualHost>>, req: Request) -> Response {
    vhost.serve(req).await
}

fn now_rfc3339() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let base = crate::profile::bearer::humantime_rfc3339(now.as_secs() as i64);
    // insert milliseconds before the trailing Z
    format!("{}.{:03}Z", base.trim_end_matches('Z'), now.subsec_millis())
}
