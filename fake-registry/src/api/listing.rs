//! `GET /v2/<name>/tags/list` and `GET /v2/_catalog`, paginated with `n`/`last` and `Link`.

use super::{json_response, query_pairs, query_param, require_method};
use crate::error::{ErrorCode, RegistryError, Result};
use axum::response::Response;
use http::request::Parts;
use http::{HeaderValue, Method, StatusCode, header};

pub(super) async fn tags(reg: &super::Registry, name: &str, req: &Parts) -> Result<Response> {
    require_method(&req.method, &[Method::GET, Method::HEAD])?;
    let all = reg.storage().list_tags(name).await?.ok_or_else(|| {
        RegistryError::new(ErrorCode::NameUnknown).detail_json(serde_json::json!({ "name": name }))
    })?;
    let page = paginate(reg, all, req)?;
    let body = serde_json::json!({ "name": name, "tags": page.items });
    Ok(page.respond(&format!("/v2/{name}/tags/list"), body, &req.method))
}

pub(super) async fn catalog(reg: &super::Registry, req: &Parts) -> Result<Response> {
    require_method(&req.method, &[Method::GET, Method::HEAD])?;
    let all = reg.storage().repositories().await?;
    let page = paginate(reg, all, req)?;
    let body = serde_json::json!({ "repositories": page.items });
    Ok(page.respond("/v2/_catalog", body, &req.method))
}

struct Page {
    items: Vec<String>,
    /// `(n, last)` of the next page, when there is one.
    next: Option<(usize, String)>,
}

impl Page {
    fn respond(self, path: &str, body: serde_json::Value, method: &Method) -> Response {
        let mut resp = json_response(
            StatusCode::OK,
            "application/json",
            body.to_string().into_bytes(),
            method,
        );
        if let Some((n, last)) = self.next {
            let last =
                percent_encoding::utf8_percent_encode(&last, percent_encoding::NON_ALPHANUMERIC);
            if let Ok(v) =
                HeaderValue::from_str(&format!("<{path}?n={n}&last={last}>; rel=\"next\""))
            {
                resp.headers_mut().insert(header::LINK, v);
            }
        }
        resp
    }
}

/// Applies `last` (exclusive lower bound, lexical) and `n` (page size) to a sorted list.
fn paginate(reg: &super::Registry, mut all: Vec<String>, req: &Parts) -> Result<Page> {
    all.sort();
    let q = query_pairs(req);
    let cap = reg.options().page_cap;
    let n = match query_param(&q, "n") {
        Some(v) => Some(v.parse::<usize>().map_err(|_| {
            RegistryError::new(ErrorCode::Unsupported)
                .with_status(StatusCode::BAD_REQUEST)
                .with_message("invalid number of results requested")
                .detail(format!("n={v:?} is not a non-negative integer"))
        })?),
        None => None,
    };
    let n = match (n, cap) {
        (Some(n), Some(cap)) => Some(n.min(cap)),
        (None, Some(cap)) => Some(cap),
        (n, None) => n,
    };
    let start = match query_param(&q, "last") {
        Some(last) => all.partition_point(|t| t.as_str() <= last.as_str()),
        None => 0,
    };
    let rest = &all[start..];
    let Some(n) = n else {
        return Ok(Page {
            items: rest.to_vec(),
            next: None,
        });
    };
    let items: Vec<String> = rest.iter().take(n).cloned().collect();
    let next = (n > 0 && rest.len() > n).then(|| (n, items.last().cloned().unwrap_or_default()));
    Ok(Page { items, next })
}
