//! Deterministic generated images, so any test or scenario can seed a registry with no
//! network: real gzip'd tar layers (clients unpack them), a real image config whose
//! `diff_ids` match, and single- or multi-platform manifests in OCI or Docker format.
//!
//! The same [`ImageSpec`] always yields byte-identical blobs and manifests, hence the same
//! digests — scenarios may pin `tag@digest` references to them.

use crate::digest::Digest;
use crate::media;
use crate::storage::StoredManifest;
use bytes::Bytes;
use oci_spec::image::{
    ConfigBuilder, DescriptorBuilder, HistoryBuilder, ImageConfigurationBuilder, ImageIndexBuilder,
    ImageManifestBuilder, MediaType, PlatformBuilder, RootFsBuilder,
};
use std::collections::BTreeMap;
use std::io::Write;

/// Which family of media types to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// OCI image manifest / OCI index.
    Oci,
    /// Docker schema 2 manifest / manifest list.
    Docker,
}

/// An `os/architecture[/variant]` platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn parse(text: &str) -> Result<Self, String> {
        let parts: Vec<&str> = text.split('/').collect();
        match parts.as_slice() {
            [os, arch] => Ok(Self {
                os: (*os).to_owned(),
                architecture: (*arch).to_owned(),
                variant: None,
            }),
            [os, arch, variant] => Ok(Self {
                os: (*os).to_owned(),
                architecture: (*arch).to_owned(),
                variant: Some((*variant).to_owned()),
            }),
            _ => Err(format!(
                "platform {text:?} is not os/arch or os/arch/variant"
            )),
        }
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct ImageSpec {
    pub format: Format,
    /// One platform: a plain manifest. Several: an index/list over one manifest each.
    pub platforms: Vec<Platform>,
    /// Size in bytes of the file inside each layer (random, so the layer is about as big).
    pub layer_sizes: Vec<usize>,
    /// Different seeds give different content (and digests) for otherwise equal specs.
    pub seed: u64,
    /// Wrap even a single platform in an index/list.
    pub force_index: bool,
    /// Image config `Labels` (none when empty), e.g. `io.buildpacks.stack.id`.
    pub labels: BTreeMap<String, String>,
    /// Image config `Env` entries (`KEY=value`) after the fixed `PATH`, e.g. the
    /// `CNB_USER_ID`/`CNB_GROUP_ID` a buildpacks build image must set.
    pub env: Vec<String>,
}

impl ImageSpec {
    pub fn single(format: Format, layer_sizes: &[usize]) -> Self {
        Self {
            format,
            platforms: vec![Platform {
                os: "linux".into(),
                architecture: "amd64".into(),
                variant: None,
            }],
            layer_sizes: layer_sizes.to_vec(),
            seed: 0,
            force_index: false,
            labels: BTreeMap::new(),
            env: Vec::new(),
        }
    }

    pub fn multi(
        format: Format,
        platforms: &[&str],
        layer_sizes: &[usize],
    ) -> Result<Self, String> {
        Ok(Self {
            format,
            platforms: platforms
                .iter()
                .map(|p| Platform::parse(p))
                .collect::<Result<_, _>>()?,
            layer_sizes: layer_sizes.to_vec(),
            seed: 0,
            force_index: true,
            labels: BTreeMap::new(),
            env: Vec::new(),
        })
    }

    /// Sets config labels and extra env entries.
    pub fn with_config(mut self, labels: BTreeMap<String, String>, env: Vec<String>) -> Self {
        self.labels = labels;
        self.env = env;
        self
    }

    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

/// A blob of a generated image.
#[derive(Debug, Clone)]
pub struct Blob {
    pub digest: Digest,
    pub media_type: String,
    pub bytes: Bytes,
}

/// A generated image: every blob, and every manifest with the top one (what a tag points at)
/// last, children before the index that lists them.
#[derive(Debug, Clone)]
pub struct Image {
    pub blobs: Vec<Blob>,
    pub manifests: Vec<StoredManifest>,
}

impl Image {
    /// The manifest a tag points at (the index, for a multi-platform image).
    pub fn top(&self) -> &StoredManifest {
        // generate() always produces at least one manifest.
        &self.manifests[self.manifests.len() - 1]
    }

    pub fn digest(&self) -> &Digest {
        &self.top().digest
    }

    /// The per-platform manifests (for a single-platform image, the top one).
    pub fn platform_manifests(&self) -> &[StoredManifest] {
        if self.manifests.len() == 1 {
            &self.manifests
        } else {
            &self.manifests[..self.manifests.len() - 1]
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot generate image: {0}")]
pub struct FixtureError(String);

fn err(e: impl std::fmt::Display) -> FixtureError {
    FixtureError(e.to_string())
}

/// Builds the image `spec` describes.
pub fn generate(spec: &ImageSpec) -> Result<Image, FixtureError> {
    if spec.platforms.is_empty() {
        return Err(FixtureError("an image needs at least one platform".into()));
    }
    let (manifest_type, index_type, config_type, layer_type) = match spec.format {
        Format::Oci => (
            media::OCI_MANIFEST,
            media::OCI_INDEX,
            media::OCI_CONFIG,
            media::OCI_LAYER_GZIP,
        ),
        Format::Docker => (
            media::DOCKER_MANIFEST,
            media::DOCKER_MANIFEST_LIST,
            media::DOCKER_CONFIG,
            media::DOCKER_LAYER_GZIP,
        ),
    };
    let mut blobs: Vec<Blob> = Vec::new();
    let mut manifests = Vec::new();
    for (p_index, platform) in spec.platforms.iter().enumerate() {
        let mut layer_descriptors = Vec::new();
        let mut diff_ids = Vec::new();
        let mut history = Vec::new();
        for (l_index, &size) in spec.layer_sizes.iter().enumerate() {
            let seed = spec.seed ^ ((p_index as u64) << 32) ^ (l_index as u64 + 1);
            let (tar, gz) = layer(
                &format!("regcompat/layer-{p_index}-{l_index}.bin"),
                size,
                seed,
            )?;
            diff_ids.push(Digest::sha256(&tar).to_string());
            let blob = push_blob(&mut blobs, layer_type, gz);
            layer_descriptors.push(descriptor(layer_type, &blob)?);
            history.push(
                HistoryBuilder::default()
                    .created("1970-01-01T00:00:00Z")
                    .created_by(format!("regcompat fixture layer {l_index} ({size} bytes)"))
                    .build()
                    .map_err(err)?,
            );
        }
        let env = std::iter::once(
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_owned(),
        )
        .chain(spec.env.iter().cloned())
        .collect::<Vec<_>>();
        let mut image_config = ConfigBuilder::default();
        image_config = image_config
            .cmd(vec!["/regcompat/hello".to_owned()])
            .env(env);
        if !spec.labels.is_empty() {
            image_config = image_config.labels(
                spec.labels
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect::<std::collections::HashMap<_, _>>(),
            );
        }
        let config = ImageConfigurationBuilder::default()
            .created("1970-01-01T00:00:00Z")
            .architecture(platform.architecture.as_str())
            .os(platform.os.as_str())
            .config(image_config.build().map_err(err)?)
            .rootfs(
                RootFsBuilder::default()
                    .typ("layers")
                    .diff_ids(diff_ids)
                    .build()
                    .map_err(err)?,
            )
            .history(history)
            .build()
            .map_err(err)?;
        let mut config_json = serde_json::to_value(&config).map_err(err)?;
        if let Some(v) = &platform.variant
            && let Some(obj) = config_json.as_object_mut()
        {
            obj.insert("variant".into(), serde_json::Value::String(v.clone()));
        }
        let config_blob = push_blob(
            &mut blobs,
            config_type,
            Bytes::from(serde_json::to_vec(&config_json).map_err(err)?),
        );
        let manifest = ImageManifestBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::from(manifest_type))
            .config(descriptor(config_type, &config_blob)?)
            .layers(layer_descriptors)
            .build()
            .map_err(err)?;
        let bytes = Bytes::from(serde_json::to_vec(&manifest).map_err(err)?);
        manifests.push(StoredManifest {
            digest: Digest::sha256(&bytes),
            media_type: manifest_type.to_owned(),
            bytes,
        });
    }
    if spec.platforms.len() > 1 || spec.force_index {
        let mut entries = Vec::new();
        for (m, platform) in manifests.iter().zip(&spec.platforms) {
            let mut p = PlatformBuilder::default()
                .architecture(platform.architecture.as_str())
                .os(platform.os.as_str());
            if let Some(v) = &platform.variant {
                p = p.variant(v.clone());
            }
            entries.push(
                DescriptorBuilder::default()
                    .media_type(MediaType::from(manifest_type))
                    .digest(oci_digest(&m.digest)?)
                    .size(m.bytes.len() as u64)
                    .platform(p.build().map_err(err)?)
                    .build()
                    .map_err(err)?,
            );
        }
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::from(index_type))
            .manifests(entries)
            .build()
            .map_err(err)?;
        let bytes = Bytes::from(serde_json::to_vec(&index).map_err(err)?);
        manifests.push(StoredManifest {
            digest: Digest::sha256(&bytes),
            media_type: index_type.to_owned(),
            bytes,
        });
    }
    Ok(Image { blobs, manifests })
}

fn push_blob(blobs: &mut Vec<Blob>, media_type: &str, bytes: Bytes) -> Blob {
    let blob = Blob {
        digest: Digest::sha256(&bytes),
        media_type: media_type.to_owned(),
        bytes,
    };
    if !blobs.iter().any(|b| b.digest == blob.digest) {
        blobs.push(blob.clone());
    }
    blob
}

fn oci_digest(d: &Digest) -> Result<oci_spec::image::Digest, FixtureError> {
    d.to_string().parse().map_err(err)
}

fn descriptor(media_type: &str, blob: &Blob) -> Result<oci_spec::image::Descriptor, FixtureError> {
    Ok(oci_spec::image::Descriptor::new(
        MediaType::from(media_type),
        blob.bytes.len() as u64,
        oci_digest(&blob.digest)?,
    ))
}

/// A tar with one file of `size` pseudo-random bytes, and its gzip. Headers are fixed
/// (mtime 0, root-owned) so the output depends only on the arguments.
fn layer(path: &str, size: usize, seed: u64) -> Result<(Bytes, Bytes), FixtureError> {
    let mut content = vec![0u8; size];
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for chunk in content.chunks_mut(8) {
        // xorshift64*: fast, deterministic, incompressible enough for realistic layer sizes
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        let v = x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_size(size as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Regular);
    builder
        .append_data(&mut header, path, content.as_slice())
        .map_err(err)?;
    let tar = builder.into_inner().map_err(err)?;
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).map_err(err)?;
    let gz = gz.finish().map_err(err)?;
    Ok((Bytes::from(tar), Bytes::from(gz)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic() {
        let spec = ImageSpec::single(Format::Oci, &[1000, 2000]);
        let a = generate(&spec).unwrap();
        let b = generate(&spec).unwrap();
        assert_eq!(a.digest(), b.digest());
        assert_eq!(a.blobs.len(), 3); // two layers + config
        let other = generate(&spec.clone().with_seed(7)).unwrap();
        assert_ne!(a.digest(), other.digest());
    }

    #[test]
    fn labels_and_env_reach_the_config_and_default_digests_do_not_move() {
        let plain = ImageSpec::single(Format::Docker, &[100]);
        let with_empty = plain.clone().with_config(BTreeMap::new(), Vec::new());
        assert_eq!(
            generate(&plain).unwrap().digest(),
            generate(&with_empty).unwrap().digest()
        );
        let labels = BTreeMap::from([("io.buildpacks.stack.id".to_owned(), "x".to_owned())]);
        let img = generate(&plain.with_config(labels, vec!["CNB_USER_ID=1000".into()])).unwrap();
        let config = img
            .blobs
            .iter()
            .find(|b| b.media_type == media::DOCKER_CONFIG)
            .unwrap();
        let config: serde_json::Value = serde_json::from_slice(&config.bytes).unwrap();
        assert_eq!(config["config"]["Labels"]["io.buildpacks.stack.id"], "x");
        assert_eq!(config["config"]["Env"][1], "CNB_USER_ID=1000");
    }

    #[test]
    fn multi_platform_oci_index_lists_each_platform() {
        let spec =
            ImageSpec::multi(Format::Oci, &["linux/amd64", "linux/arm64/v8"], &[100]).unwrap();
        let img = generate(&spec).unwrap();
        assert_eq!(img.manifests.len(), 3);
        assert_eq!(img.top().media_type, media::OCI_INDEX);
        let index: serde_json::Value = serde_json::from_slice(&img.top().bytes).unwrap();
        let entries = index["manifests"].as_array().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1]["platform"]["architecture"], "arm64");
        assert_eq!(entries[1]["platform"]["variant"], "v8");
        assert_eq!(entries[0]["digest"], img.manifests[0].digest.to_string());
    }

    #[test]
    fn docker_manifest_list_uses_docker_media_types() {
        let spec =
            ImageSpec::multi(Format::Docker, &["linux/amd64", "linux/arm64"], &[10]).unwrap();
        let img = generate(&spec).unwrap();
        assert_eq!(img.top().media_type, media::DOCKER_MANIFEST_LIST);
        let m: serde_json::Value = serde_json::from_slice(&img.manifests[0].bytes).unwrap();
        assert_eq!(m["mediaType"], media::DOCKER_MANIFEST);
        assert_eq!(m["config"]["mediaType"], media::DOCKER_CONFIG);
        assert_eq!(m["layers"][0]["mediaType"], media::DOCKER_LAYER_GZIP);
    }

    #[test]
    fn layer_sizes_and_diff_ids_are_real() {
        let img = generate(&ImageSpec::single(Format::Oci, &[50_000])).unwrap();
        let layer = img
            .blobs
            .iter()
            .find(|b| b.media_type == media::OCI_LAYER_GZIP)
            .unwrap();
        assert!(
            layer.bytes.len() > 50_000,
            "random content does not compress"
        );
        let mut tar = Vec::new();
        std::io::Read::read_to_end(
            &mut flate2::read::GzDecoder::new(&layer.bytes[..]),
            &mut tar,
        )
        .unwrap();
        let config = img
            .blobs
            .iter()
            .find(|b| b.media_type == media::OCI_CONFIG)
            .unwrap();
        let config: serde_json::Value = serde_json::from_slice(&config.bytes).unwrap();
        assert_eq!(
            config["rootfs"]["diff_ids"][0],
            Digest::sha256(&tar).to_string()
        );
    }
}
