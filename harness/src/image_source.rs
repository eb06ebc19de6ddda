//! Local images for push steps: the harness generates the image (`fake_registry::fixtures`)
//! and writes it in the formats clients take as a push source: an OCI image layout
//! directory (crane, skopeo) and a `docker save` archive (`docker load`).

use fake_registry::fixtures::Image;
use serde_json::json;
use std::fs;
use std::io;
use std::path::Path;

fn hex_of(digest: &str) -> &str {
    digest.split_once(':').map_or(digest, |(_, h)| h)
}

/// Writes `image` as an OCI image layout at `dir` with one tagged top-level manifest.
pub fn write_oci_layout(image: &Image, dir: &Path, tag: &str) -> io::Result<()> {
    let blobs = dir.join("blobs/sha256");
    fs::create_dir_all(&blobs)?;
    fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    for b in &image.blobs {
        fs::write(blobs.join(hex_of(&b.digest.to_string())), &b.bytes)?;
    }
    for m in &image.manifests {
        fs::write(blobs.join(hex_of(&m.digest.to_string())), &m.bytes)?;
    }
    let top = image.top();
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": top.media_type,
            "digest": top.digest.to_string(),
            "size": top.bytes.len(),
            "annotations": { "org.opencontainers.image.ref.name": tag },
        }],
    });
    fs::write(
        dir.join("index.json"),
        serde_json::to_vec_pretty(&index).map_err(io::Error::other)?,
    )
}

/// Writes a single-platform `image` as a `docker save` archive tagged `repo_tag`.
pub fn write_docker_archive(image: &Image, path: &Path, repo_tag: &str) -> io::Result<()> {
    let top = image.top();
    let manifest: serde_json::Value =
        serde_json::from_slice(&top.bytes).map_err(io::Error::other)?;
    let Some(config) = manifest["config"]["digest"].as_str() else {
        return Err(io::Error::other(
            "the image is an index: `docker load` takes one platform; give the push step a single-platform `source`",
        ));
    };
    let blob = |digest: &str| {
        image
            .blobs
            .iter()
            .find(|b| b.digest.to_string() == digest)
            .ok_or_else(|| io::Error::other(format!("blob {digest} missing from the fixture")))
    };
    let mut tar = tar::Builder::new(fs::File::create(path)?);
    let mut add = |name: &str, bytes: &[u8]| -> io::Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        tar.append_data(&mut h, name, bytes)
    };
    let config_name = format!("{}.json", hex_of(config));
    add(&config_name, &blob(config)?.bytes)?;
    let mut layers = Vec::new();
    for l in manifest["layers"].as_array().into_iter().flatten() {
        let Some(d) = l["digest"].as_str() else {
            continue;
        };
        // docker load decompresses gzip'd layer files itself
        let name = format!("{}/layer.tar", hex_of(d));
        add(&name, &blob(d)?.bytes)?;
        layers.push(name);
    }
    let archive_manifest =
        json!([{ "Config": config_name, "RepoTags": [repo_tag], "Layers": layers }]);
    add(
        "manifest.json",
        &serde_json::to_vec(&archive_manifest).map_err(io::Error::other)?,
    )?;
    tar.into_inner()?.sync_all()
}
