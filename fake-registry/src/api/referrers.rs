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
    let subject_text = subject.to_string();

    let mut descriptors: Vec<Value> = Vec::new();
    for m in reg.storage().list_manifests(name).await? {
        let Ok(Value::Object(doc)) = serde_json::from_slice::<Value>(&m.bytes) else {
            continue;
        };
        let refers = doc
            .get("subject")
            .and_then(|s| s.get("digest"))
            .and_then(Value::as_str)
            .is_some_and(|d| d == subject_text);
        if !refers {
            continue;
        }
        // Spec: artifactType, else the config's media type (image manifests only).
        let artifact_type = doc
            .get("artifactType")
            .and_then(Value::as_str)
            .or_else(|| {
                doc.get("config")
                    .and_then(|c| c.get("mediaType"))
                    .and_then(Value::as_str)
            })
            .map(str::to_owned);
        if let Some(f) = &filter
            && artifact_type.as_deref() != Some(f.as_str())
        {
            continue;
        }
        let mut d = Map::new();
        d.insert("mediaType".into(), Value::String(m.media_type.clone()));
        d.insert("digest".into(), Value::String(m.digest.to_string()));
        d.insert("size".into(), Value::from(m.bytes.len()));
        if let Some(at) = artifact_type {
            d.insert("artifactType".into(), Value::String(at));
        }
        if let Some(a) = doc.get("annotations").filter(|a| a.is_object()) {
            d.insert("annotations".into(), a.clone());
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
