//! Image references and the actions on images: pull (through mirrors first), push, copy,
//! build-from (one generated layer on a base) and builder-create.

use crate::mutant::Mutant;
use crate::session::{AuthMode, Endpoint, Session, status_error};
use crate::{Error, Result};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, LOCATION};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use std::io::Write as _;
use std::path::Path;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// The host that serves Docker Hub's registry API.
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";

/// `host[:port]/name[:tag][@sha256:…]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    pub registry: String,
    pub name: String,
    pub tag: Option<String>,
    pub digest: Option<String>,
}

impl Reference {
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |why: &str| Error::Usage(format!("bad image reference {text:?}: {why}"));
        let (registry, rest) = text.split_once('/').ok_or_else(|| bad("no registry"))?;
        if !(registry.contains('.') || registry.contains(':') || registry == "localhost") {
            return Err(bad("the first component is not a registry host"));
        }
        let (rest, digest) = match rest.split_once('@') {
            Some((r, d)) => (r, Some(d.to_owned())),
            None => (rest, None),
        };
        if let Some(d) = &digest
            && !d.starts_with("sha256:")
        {
            return Err(bad("only sha256 digests"));
        }
        let (name, tag) = match rest.rsplit_once(':') {
            Some((n, t)) if !t.contains('/') => (n, Some(t.to_owned())),
            _ => (rest, None),
        };
        if name.is_empty() {
            return Err(bad("no repository"));
        }
        // Docker Hub's references name `docker.io` (or the legacy `index.docker.io`); its API
        // is served by registry-1.docker.io, official images under `library/`
        // (distribution/reference's normalisation, as docker, containerd and buildkit do).
        let hub = ["docker.io", "index.docker.io"]
            .iter()
            .any(|h| registry.eq_ignore_ascii_case(h));
        let (registry, name) = if hub {
            let name = if name.contains('/') {
                name.to_owned()
            } else {
                format!("library/{name}")
            };
            (DOCKER_HUB_API_HOST.to_owned(), name)
        } else {
            (registry.to_owned(), name.to_owned())
        };
        Ok(Self {
            registry,
            name,
            tag,
            digest,
        })
    }

    /// What goes after `/manifests/` to fetch it: the digest when pinned.
    pub fn manifest_ref(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }
}

/// A configured mirror: requests for `upstream` go first to `mirror` (under `path`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorSpec {
    pub upstream: String,
    pub mirror: String,
    pub path: String,
}

impl MirrorSpec {
    /// `UPSTREAM=MIRROR[/path]`.
    pub fn parse(text: &str) -> Result<Self> {
        let (upstream, rest) = text.split_once('=').ok_or_else(|| {
            Error::Usage(format!("--mirror {text:?}: want UPSTREAM=MIRROR[/path]"))
        })?;
        let (mirror, path) = rest.split_once('/').unwrap_or((rest, ""));
        Ok(Self {
            upstream: upstream.to_owned(),
            mirror: mirror.to_owned(),
            path: path.trim_matches('/').to_owned(),
        })
    }

    fn endpoint(&self, image_registry: &str) -> Endpoint {
        Endpoint {
            host: self.mirror.clone(),
            prefix: if self.path.is_empty() {
                String::new()
            } else {
                format!("{}/", self.path)
            },
            query: self.path.is_empty().then(|| format!("ns={image_registry}")),
            image_registry: image_registry.to_owned(),
            is_mirror: true,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Blob {
    pub digest: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
}

impl Blob {
    pub fn new(media_type: &str, bytes: Vec<u8>) -> Self {
        Self {
            digest: sha256(&bytes),
            media_type: media_type.to_owned(),
            bytes,
        }
    }
}

/// One platform's image, everything in memory (the scenarios' images are small).
#[derive(Debug, Clone)]
pub struct Image {
    pub manifest: Blob,
    pub config: Blob,
    pub layers: Vec<Blob>,
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

pub struct Client {
    pub session: Session,
    pub mirrors: Vec<MirrorSpec>,
}

fn same_host(a: &str, b: &str) -> bool {
    crate::credentials::normalise_key(a, false) == crate::credentials::normalise_key(b, false)
}

impl Client {
    fn mutant(&self) -> Mutant {
        self.session.mutant
    }

    fn accept(&self) -> String {
        let list: &[&str] = match self.mutant() {
            Mutant::AcceptDockerOnly => &[DOCKER_MANIFEST, DOCKER_LIST],
            Mutant::NoIndexAccept => &[OCI_MANIFEST, DOCKER_MANIFEST],
            _ => &[OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST],
        };
        list.join(", ")
    }

    fn verify(&self, what: &str, want: &str, size: Option<u64>, bytes: &[u8]) -> Result<()> {
        if self.mutant() == Mutant::NoVerify {
            return Ok(());
        }
        let got = sha256(bytes);
        if got != want {
            return Err(Error::Verify(format!("{what}: digest {got}, want {want}")));
        }
        if let Some(size) = size
            && size != bytes.len() as u64
        {
            return Err(Error::Verify(format!(
                "{what}: {} bytes, descriptor says {size}",
                bytes.len()
            )));
        }
        Ok(())
    }

    /// Pulls one platform (linux/amd64 of an index), mirrors first.
    pub fn pull(&mut self, r: &Reference) -> Result<Image> {
        let mut endpoints: Vec<Endpoint> = Vec::new();
        if self.mutant() != Mutant::NoMirror {
            for m in &self.mirrors {
                if same_host(&m.upstream, &r.registry) {
                    endpoints.push(m.endpoint(&r.registry));
                }
            }
        }
        endpoints.push(Endpoint::registry(&r.registry));
        let mut errors = Vec::new();
        for ep in &endpoints {
            match self.pull_from(ep, r) {
                Ok(image) => return Ok(image),
                Err(e) if ep.is_mirror && self.mutant() != Mutant::NoMirrorFallback => {
                    eprintln!(
                        "refclient: mirror {} failed ({e}); trying the next host",
                        ep.host
                    );
                    errors.push(e.to_string());
                }
                Err(e) => {
                    if errors.is_empty() {
                        return Err(e);
                    }
                    errors.push(e.to_string());
                    return Err(Error::Registry(errors.join("; then ")));
                }
            }
        }
        Err(Error::Registry(errors.join("; ")))
    }

    fn pull_from(&mut self, ep: &Endpoint, r: &Reference) -> Result<Image> {
        let scope = format!("repository:{}{}:pull", ep.prefix, r.name);
        let (bytes, media_type) = self.get_manifest(ep, &r.name, r.manifest_ref(), &scope)?;
        if let Some(d) = &r.digest {
            self.verify("manifest", d, None, &bytes)?;
        }
        let doc: Value = serde_json::from_slice(&bytes)
            .map_err(|e| Error::Registry(format!("manifest of {}: {e}", r.name)))?;
        let media_type = doc["mediaType"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or(media_type);
        let (manifest, doc) = if media_type == OCI_INDEX || media_type == DOCKER_LIST {
            let chosen = pick_platform(&doc).ok_or_else(|| {
                Error::Registry(format!("{}: the index lists no manifest", r.name))
            })?;
            let digest = chosen["digest"].as_str().unwrap_or_default().to_owned();
            let (bytes, mt) = self.get_manifest(ep, &r.name, &digest, &scope)?;
            self.verify(
                "platform manifest",
                &digest,
                chosen["size"].as_u64(),
                &bytes,
            )?;
            let doc: Value = serde_json::from_slice(&bytes)
                .map_err(|e| Error::Registry(format!("manifest {digest}: {e}")))?;
            let mt = chosen["mediaType"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or(mt);
            (Blob::new(&mt, bytes), doc)
        } else {
            (Blob::new(&media_type, bytes), doc)
        };
        // jib 3.2.0: a digest-pinned base's blobs were fetched with a client without auth.
        let mode = if self.mutant() == Mutant::DigestBlobsAnonymous && r.digest.is_some() {
            AuthMode::None
        } else {
            AuthMode::Normal
        };
        let config = self.get_blob(ep, &r.name, &doc["config"], &scope, mode)?;
        let mut layers = Vec::new();
        for l in doc["layers"].as_array().into_iter().flatten() {
            layers.push(self.get_blob(ep, &r.name, l, &scope, mode)?);
        }
        Ok(Image {
            manifest,
            config,
            layers,
        })
    }

    fn get_manifest(
        &mut self,
        ep: &Endpoint,
        name: &str,
        reference: &str,
        scope: &str,
    ) -> Result<(Vec<u8>, String)> {
        let url = ep.url(name, &format!("manifests/{reference}"));
        let accept = self.accept();
        let resp = self.session.send(ep, Some(scope), AuthMode::Normal, &|c| {
            c.get(&url).header(ACCEPT, &accept)
        })?;
        if resp.status() != StatusCode::OK {
            return Err(status_error(&format!("GET {url}"), resp));
        }
        let media_type = resp
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or_default().trim().to_owned())
            .unwrap_or_default();
        let bytes = resp
            .bytes()
            .map_err(|e| Error::Http(format!("GET {url}: {e}")))?;
        Ok((bytes.to_vec(), media_type))
    }

    fn get_blob(
        &mut self,
        ep: &Endpoint,
        name: &str,
        desc: &Value,
        scope: &str,
        mode: AuthMode,
    ) -> Result<Blob> {
        let digest = desc["digest"]
            .as_str()
            .ok_or_else(|| Error::Registry(format!("{name}: a descriptor without digest")))?;
        let url = ep.url(name, &format!("blobs/{digest}"));
        let resp = self.session.send(ep, Some(scope), mode, &|c| c.get(&url))?;
        if resp.status() != StatusCode::OK {
            return Err(status_error(&format!("GET {url}"), resp));
        }
        let bytes = resp
            .bytes()
            .map_err(|e| Error::Http(format!("GET {url}: {e}")))?
            .to_vec();
        self.verify(
            &format!("blob {digest}"),
            digest,
            desc["size"].as_u64(),
            &bytes,
        )?;
        Ok(Blob {
            digest: digest.to_owned(),
            media_type: desc["mediaType"].as_str().unwrap_or_default().to_owned(),
            bytes,
        })
    }

    /// Uploads the blobs, then PUTs the manifest under the target's tag (or digest).
    pub fn push(&mut self, to: &Reference, image: &Image) -> Result<String> {
        let ep = Endpoint::registry(&to.registry);
        let scope = format!("repository:{}:pull,push", to.name);
        if self.mutant() == Mutant::ManifestBeforeBlobs {
            self.put_manifest(&ep, to, image, &scope)?;
        }
        for blob in std::iter::once(&image.config).chain(&image.layers) {
            self.push_blob(&ep, &to.name, blob, &scope)?;
        }
        self.put_manifest(&ep, to, image, &scope)
    }

    fn push_blob(&mut self, ep: &Endpoint, name: &str, blob: &Blob, scope: &str) -> Result<()> {
        let head = ep.url(name, &format!("blobs/{}", blob.digest));
        let resp = self
            .session
            .send(ep, Some(scope), AuthMode::Normal, &|c| c.head(&head))?;
        if resp.status() == StatusCode::OK {
            return Ok(());
        }
        let start = ep.url(name, "blobs/uploads/");
        let resp = self.session.send(ep, Some(scope), AuthMode::Normal, &|c| {
            c.post(&start).header(reqwest::header::CONTENT_LENGTH, "0")
        })?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(status_error(&format!("POST {start}"), resp));
        }
        let location = resp
            .headers()
            .get(LOCATION)
            .and_then(|l| l.to_str().ok())
            .ok_or_else(|| Error::Registry(format!("POST {start}: 202 without Location")))?;
        let mut put = resp
            .url()
            .join(location)
            .map_err(|e| Error::Registry(format!("bad upload Location {location:?}: {e}")))?;
        put.query_pairs_mut().append_pair("digest", &blob.digest);
        let put = put.to_string();
        let bytes = blob.bytes.clone();
        let resp = self.session.send(ep, Some(scope), AuthMode::Normal, &|c| {
            c.put(&put)
                .header(CONTENT_TYPE, "application/octet-stream")
                .body(bytes.clone())
        })?;
        if resp.status() != StatusCode::CREATED {
            return Err(status_error(&format!("PUT blob {}", blob.digest), resp));
        }
        Ok(())
    }

    fn put_manifest(
        &mut self,
        ep: &Endpoint,
        to: &Reference,
        image: &Image,
        scope: &str,
    ) -> Result<String> {
        let url = ep.url(&to.name, &format!("manifests/{}", to.manifest_ref()));
        let (bytes, media_type) = (
            image.manifest.bytes.clone(),
            image.manifest.media_type.clone(),
        );
        let resp = self.session.send(ep, Some(scope), AuthMode::Normal, &|c| {
            c.put(&url)
                .header(CONTENT_TYPE, &media_type)
                .body(bytes.clone())
        })?;
        if resp.status() != StatusCode::CREATED {
            return Err(status_error(&format!("PUT {url}"), resp));
        }
        Ok(image.manifest.digest.clone())
    }
}

/// linux/amd64 from an index, else its first entry.
fn pick_platform(index: &Value) -> Option<&Value> {
    let list = index["manifests"].as_array()?;
    list.iter()
        .find(|m| m["platform"]["os"] == "linux" && m["platform"]["architecture"] == "amd64")
        .or_else(|| list.first())
}

/// Reads the single image of an OCI image layout (what the runner writes for `push`).
pub fn read_layout(dir: &Path) -> Result<Image> {
    let read =
        |p: &Path| std::fs::read(p).map_err(|e| Error::Usage(format!("{}: {e}", p.display())));
    let blob = |digest: &str| -> Result<Vec<u8>> {
        let hex = digest
            .strip_prefix("sha256:")
            .ok_or_else(|| Error::Usage(format!("layout: unsupported digest {digest}")))?;
        read(&dir.join("blobs/sha256").join(hex))
    };
    let index: Value = serde_json::from_slice(&read(&dir.join("index.json"))?)
        .map_err(|e| Error::Usage(format!("{}/index.json: {e}", dir.display())))?;
    let top = &index["manifests"][0];
    let digest = top["digest"]
        .as_str()
        .ok_or_else(|| Error::Usage("layout: index.json lists no manifest".into()))?;
    let media_type = top["mediaType"].as_str().unwrap_or(OCI_MANIFEST);
    if media_type == OCI_INDEX || media_type == DOCKER_LIST {
        return Err(Error::Usage(
            "layout: a nested index is not supported".into(),
        ));
    }
    let manifest = Blob::new(media_type, blob(digest)?);
    let doc: Value = serde_json::from_slice(&manifest.bytes)
        .map_err(|e| Error::Usage(format!("layout manifest: {e}")))?;
    let load = |d: &Value| -> Result<Blob> {
        let digest = d["digest"].as_str().unwrap_or_default();
        Ok(Blob {
            digest: digest.to_owned(),
            media_type: d["mediaType"].as_str().unwrap_or_default().to_owned(),
            bytes: blob(digest)?,
        })
    };
    let config = load(&doc["config"])?;
    let mut layers = Vec::new();
    for l in doc["layers"].as_array().into_iter().flatten() {
        layers.push(load(l)?);
    }
    Ok(Image {
        manifest,
        config,
        layers,
    })
}

/// A gzipped tar holding one file; (layer blob, diff id).
pub fn generated_layer(path: &str, content: &[u8], media_type: &str) -> Result<(Blob, String)> {
    let io = |e: std::io::Error| Error::Usage(format!("generating a layer: {e}"));
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    tar.append_data(&mut header, path, content).map_err(io)?;
    let tar = tar.into_inner().map_err(io)?;
    let diff_id = sha256(&tar);
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::default());
    gz.write_all(&tar).map_err(io)?;
    let bytes = gz.finish().map_err(io)?;
    Ok((Blob::new(media_type, bytes), diff_id))
}

/// `base` plus one generated layer: a new config (diff id, history) and manifest.
pub fn add_layer(base: &Image, path: &str, content: &[u8], created_by: &str) -> Result<Image> {
    let docker = base.manifest.media_type == DOCKER_MANIFEST;
    let layer_type = if docker { DOCKER_LAYER } else { OCI_LAYER };
    let (layer, diff_id) = generated_layer(path, content, layer_type)?;
    let mut config: Value = serde_json::from_slice(&base.config.bytes)
        .map_err(|e| Error::Registry(format!("base config: {e}")))?;
    if !config["rootfs"]["diff_ids"].is_array() {
        config["rootfs"] = json!({ "type": "layers", "diff_ids": [] });
    }
    if let Some(ids) = config["rootfs"]["diff_ids"].as_array_mut() {
        ids.push(json!(diff_id));
    }
    if let Some(h) = config["history"].as_array_mut() {
        h.push(json!({ "created_by": created_by }));
    }
    let config_bytes =
        serde_json::to_vec(&config).map_err(|e| Error::Registry(format!("new config: {e}")))?;
    let config = Blob::new(&base.config.media_type, config_bytes);
    let mut manifest: Value = serde_json::from_slice(&base.manifest.bytes)
        .map_err(|e| Error::Registry(format!("base manifest: {e}")))?;
    manifest["config"]["digest"] = json!(config.digest);
    manifest["config"]["size"] = json!(config.bytes.len());
    let entry =
        json!({ "mediaType": layer.media_type, "digest": layer.digest, "size": layer.bytes.len() });
    match manifest["layers"].as_array_mut() {
        Some(layers) => layers.push(entry),
        None => manifest["layers"] = json!([entry]),
    }
    let manifest_bytes =
        serde_json::to_vec(&manifest).map_err(|e| Error::Registry(format!("new manifest: {e}")))?;
    let mut layers = base.layers.clone();
    layers.push(layer);
    Ok(Image {
        manifest: Blob::new(&base.manifest.media_type, manifest_bytes),
        config,
        layers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        let r = Reference::parse("docker.domain.test:443/path/image:1").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.name.as_str(), r.tag.as_deref()),
            ("docker.domain.test:443", "path/image", Some("1"))
        );
        let r = Reference::parse("a.b/openjdk:17@sha256:abc").unwrap();
        assert_eq!(r.manifest_ref(), "sha256:abc");
        assert_eq!(r.tag.as_deref(), Some("17"));
        let r = Reference::parse("localhost:5000/x").unwrap();
        assert_eq!(r.manifest_ref(), "latest");
        assert!(Reference::parse("library/alpine:3").is_err());
        assert!(Reference::parse("noreg").is_err());
    }

    #[test]
    fn docker_hub_references_go_to_its_api_host() {
        for text in ["docker.io/library/alpine:3", "index.docker.io/alpine:3"] {
            let r = Reference::parse(text).unwrap();
            assert_eq!(
                (r.registry.as_str(), r.name.as_str()),
                ("registry-1.docker.io", "library/alpine"),
                "{text}"
            );
        }
        let r = Reference::parse("docker.io/octo/app:1").unwrap();
        assert_eq!(r.name, "octo/app");
        // The API host itself is any registry: no `library/` added.
        let r = Reference::parse("registry-1.docker.io/alpine:3").unwrap();
        assert_eq!(r.name, "alpine");
    }

    #[test]
    fn mirror_specs() {
        let m = MirrorSpec::parse("registry.gitlab.example.com=mirror.example.com:5443/gitlab")
            .unwrap();
        assert_eq!(m.path, "gitlab");
        assert_eq!(m.endpoint("registry.gitlab.example.com").prefix, "gitlab/");
        let m = MirrorSpec::parse("u=m:5443").unwrap();
        assert_eq!(m.endpoint("u").query.as_deref(), Some("ns=u"));
        assert!(MirrorSpec::parse("nope").is_err());
    }

    #[test]
    fn a_generated_layer_extends_the_base() {
        let base_config = br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:00"]},"history":[]}"#.to_vec();
        let config = Blob::new("application/vnd.oci.image.config.v1+json", base_config);
        let layer = Blob::new(OCI_LAYER, b"x".to_vec());
        let manifest = json!({"schemaVersion":2,"mediaType":OCI_MANIFEST,
            "config":{"mediaType":config.media_type,"digest":config.digest,"size":config.bytes.len()},
            "layers":[{"mediaType":OCI_LAYER,"digest":layer.digest,"size":1}]});
        let base = Image {
            manifest: Blob::new(OCI_MANIFEST, serde_json::to_vec(&manifest).unwrap()),
            config,
            layers: vec![layer],
        };
        let built = add_layer(&base, "regcompat.txt", b"hi\n", "test").unwrap();
        assert_eq!(built.layers.len(), 2);
        let m: Value = serde_json::from_slice(&built.manifest.bytes).unwrap();
        assert_eq!(m["layers"].as_array().unwrap().len(), 2);
        assert_eq!(m["config"]["digest"], json!(built.config.digest));
        let c: Value = serde_json::from_slice(&built.config.bytes).unwrap();
        assert_eq!(c["rootfs"]["diff_ids"].as_array().unwrap().len(), 2);
        // Deterministic.
        let again = add_layer(&base, "regcompat.txt", b"hi\n", "test").unwrap();
        assert_eq!(again.manifest.digest, built.manifest.digest);
    }
}
