//! `GET /v2/<name>/referrers/<digest>[?artifactType=…]`: the manifests whose `subject` is
//! `<digest>`, as an OCI index. Always 200 (an empty index when there are none).

use super::{json_response, query_pairs, query_param, require_method};
use crate::digest::Digest;
use crate::error::Result;
use crate::media;
use axum::response::Response;
use http::request::Parts;
use http::{HeaderValue, Method, StatusCode};
use serde_json::{Map, Value, json};

pub(super) async fn list(
    reg: &super::Registry,
    name: &str,
    digest: &str,
    req: &Parts,
) -> Result<Response> {
    require_method(&req.method, &[Method::GET, Method::HEAD])?;
    let subject: Digest = digest.parse()?;
    let q = query_pairs(req);
    let filter = query_param(&q, "artifactType");

    // From the storage's referrers index: no manifest is parsed per request.
    let mut descriptors: Vec<Value> = Vec::new();
    for r in reg.storage().referrers(name, &subject).await? {
        if let Some(f) = &filter
            && r.artifact_type.as_deref() != Some(f.as_str())
        {
            continue;
        }
        let mut d = Map::new();
        d.insert("mediaType".into(), Value::String(r.media_type));
        d.insert("digest".into(), Value::String(r.digest.to_string()));
        d.insert("size".into(), Value::from(r.size));
        if let Some(at) = r.artifact_type {
            d.insert("artifactType".into(), Value::String(at));
        }
        if let Some(a) = r.annotations {
            d.insert("annotations".into(), a);
        }
        descriptors.push(Value::Object(d));
    }
    descriptors.sort_by(|a, b| a["digest"].as_str().cmp(&b["digest"].as_str()));
    let body = json!({
        "schemaVersion": 2,
        "mediaType": media::OCI_INDEX,
        "manifests": descriptors,
    });
    let mut resp = json_response(
        StatusCode::OK,
        media::OCI_INDEX,
        body.to_string().into_bytes(),
        &req.method,
    );
    if filter.is_some() {
        resp.headers_mut().insert(
            "OCI-Filters-Applied",
            HeaderValue::from_static("artifactType"),
        );
    }
    Ok(resp)
}
