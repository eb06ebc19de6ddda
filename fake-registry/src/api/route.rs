//! Parses `/v2/…` paths. Repository names contain slashes, so the endpoint is recognised
//! from the *end* of the path (`…/manifests/<ref>`, `…/blobs/uploads/<id>` …), the way the
//! spec's path grammar reads.

use percent_encoding::percent_decode_str;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/v2/`
    Base,
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/tags/list`
    Tags { name: String },
    /// `/v2/<name>/manifests/<reference>`
    Manifest { name: String, reference: String },
    /// `/v2/<name>/blobs/<digest>`
    Blob { name: String, digest: String },
    /// `/v2/<name>/blobs/uploads/`
    UploadStart { name: String },
    /// `/v2/<name>/blobs/uploads/<id>`
    Upload { name: String, id: String },
    /// `/v2/<name>/referrers/<digest>`
    Referrers { name: String, digest: String },
}

/// `None` when the path is not a registry endpoint at all.
pub fn parse(path: &str) -> Option<Route> {
    let rest = path.strip_prefix("/v2")?;
    if rest.is_empty() || rest == "/" {
        return Some(Route::Base);
    }
    let rest = rest.strip_prefix('/')?;
    if rest == "_catalog" {
        return Some(Route::Catalog);
    }
    let trailing_slash = rest.ends_with('/');
    let segments: Vec<String> = rest
        .trim_end_matches('/')
        .split('/')
        .map(|s| percent_decode_str(s).decode_utf8_lossy().into_owned())
        .collect();
    let n = segments.len();
    let name_before = |k: usize| -> Option<String> {
        (n > k)
            .then(|| segments[..n - k].join("/"))
            .filter(|s| !s.is_empty())
    };
    let seg = |i_from_end: usize| segments.get(n.checked_sub(i_from_end)?).map(String::as_str);

    if trailing_slash || (seg(2) == Some("blobs") && seg(1) == Some("uploads")) {
        // `/v2/<name>/blobs/uploads/` (the slash is optional in practice)
        if seg(2) == Some("blobs") && seg(1) == Some("uploads") {
            return Some(Route::UploadStart {
                name: name_before(2)?,
            });
        }
        if trailing_slash {
            return None;
        }
    }
    match (seg(2), seg(1)) {
        (Some("tags"), Some("list")) => Some(Route::Tags {
            name: name_before(2)?,
        }),
        (Some("manifests"), Some(r)) => Some(Route::Manifest {
            name: name_before(2)?,
            reference: r.to_owned(),
        }),
        (Some("uploads"), Some(id)) if seg(3) == Some("blobs") => Some(Route::Upload {
            name: name_before(3)?,
            id: id.to_owned(),
        }),
        (Some("blobs"), Some(d)) => Some(Route::Blob {
            name: name_before(2)?,
            digest: d.to_owned(),
        }),
        (Some("referrers"), Some(d)) => Some(Route::Referrers {
            name: name_before(2)?,
            digest: d.to_owned(),
        }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn s(x: &str) -> String {
        x.to_owned()
    }

    #[rstest]
    #[case("/v2/", Some(Route::Base))]
    #[case("/v2", Some(Route::Base))]
    #[case("/v2/_catalog", Some(Route::Catalog))]
    #[case("/v2/a/b/tags/list", Some(Route::Tags { name: s("a/b") }))]
    #[case("/v2/a/manifests/latest", Some(Route::Manifest { name: s("a"), reference: s("latest") }))]
    #[case("/v2/a/manifests/sha256%3Aabc", Some(Route::Manifest { name: s("a"), reference: s("sha256:abc") }))]
    #[case("/v2/a/blobs/uploads/", Some(Route::UploadStart { name: s("a") }))]
    #[case("/v2/a/blobs/uploads", Some(Route::UploadStart { name: s("a") }))]
    #[case("/v2/a/blobs/uploads/123", Some(Route::Upload { name: s("a"), id: s("123") }))]
    #[case("/v2/a/blobs/sha256:1", Some(Route::Blob { name: s("a"), digest: s("sha256:1") }))]
    #[case("/v2/a/referrers/sha256:1", Some(Route::Referrers { name: s("a"), digest: s("sha256:1") }))]
    // a repository whose components look like endpoint words
    #[case("/v2/x/blobs/y/manifests/v1", Some(Route::Manifest { name: s("x/blobs/y"), reference: s("v1") }))]
    #[case("/v2/manifests/tags/list", Some(Route::Tags { name: s("manifests") }))]
    #[case("/v2/tags/list", None)]
    #[case("/v2/a", None)]
    #[case("/v3/a/tags/list", None)]
    #[case("/v2/a/manifests/", None)]
    fn parses(#[case] path: &str, #[case] expected: Option<Route>) {
        assert_eq!(parse(path), expected);
    }
}
