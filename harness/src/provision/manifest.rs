//! `clients.toml`: the one manifest pinning every client version, and resolving
//! `name[@version]` requests against it.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

/// The parsed manifest.
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Where it was read from (for messages).
    pub path: PathBuf,
    /// Clients in file order.
    pub clients: Vec<ClientDef>,
}

/// One `[[client]]` entry.
#[derive(Debug, Clone)]
pub struct ClientDef {
    pub name: String,
    pub aliases: Vec<String>,
    pub description: Option<String>,
    pub binaries: Vec<String>,
    /// Other clients (default versions) installed along with this one.
    pub requires: Vec<String>,
    /// Default version for a bare `name` (explicit `default`, else the newest pinned).
    pub default_version: String,
    /// Pinned versions, newest first.
    pub versions: Vec<VersionDef>,
    method: MethodDef,
}

/// One `[[client.version]]` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionDef {
    pub version: String,
    pub note: Option<String>,
    /// go: per-version override of the client's `main` (packages move between releases).
    pub main: Option<Vec<String>>,
    /// go: per-version override of the client's `ldflags`.
    pub ldflags: Option<String>,
}

#[derive(Debug, Clone)]
enum MethodDef {
    Go {
        module: String,
        main: Vec<String>,
        build: GoBuild,
        cgo: bool,
        tags: Vec<String>,
        ldflags: Option<String>,
        sumdb: bool,
        package: Option<GoPackage>,
    },
    Debian {
        packages: Vec<String>,
    },
    Maven {
        group_id: String,
        artifact_id: String,
        extra_artifacts: Vec<String>,
    },
}

/// How a Go client is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GoBuild {
    /// `go install module/pkg@vX` (module proxy, no replace directives allowed).
    Install,
    /// `go mod download -json module@vX` → copy `Dir` → `go build` inside it, so the
    /// module's own `replace` directives apply.
    ModuleDir,
}

/// An artifact packaged after a Go build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GoPackage {
    /// The CNB lifecycle tarball pack's `[lifecycle] uri` takes:
    /// `lifecycle-v<version>+linux.x86-64.tgz` with `lifecycle.toml` and
    /// `lifecycle/{lifecycle,launcher,<phase> symlinks}`, made by the module's own
    /// `tools/packager`.
    CnbLifecycle,
}

/// Everything needed to install one client version; part of the stamp's recipe hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "kebab-case")]
pub enum Recipe {
    Go {
        module: String,
        /// `v`-prefixed module version.
        module_version: String,
        /// Package dirs inside the module (`./cmd/crane`).
        main: Vec<String>,
        build: GoBuild,
        cgo: bool,
        tags: Vec<String>,
        ldflags: Option<String>,
        /// false: GONOSUMDB=<module> (the checksum DB has no entry for it).
        sumdb: bool,
        /// Extra artifact made from the built binaries (module-dir builds only).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        package: Option<GoPackage>,
    },
    Debian {
        packages: Vec<String>,
    },
    Maven {
        /// `groupId:artifactId:version`.
        coordinates: String,
        extra_artifacts: Vec<String>,
    },
}

impl Recipe {
    /// Short method name, e.g. for progress lines.
    pub fn method(&self) -> &'static str {
        match self {
            Recipe::Go {
                build: GoBuild::Install,
                ..
            } => "go install",
            Recipe::Go {
                build: GoBuild::ModuleDir,
                ..
            } => "go build in module dir",
            Recipe::Debian { .. } => "apt",
            Recipe::Maven { .. } => "maven",
        }
    }
}

/// A resolved `name@version`: what to install and what it must provide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub name: String,
    pub version: String,
    pub note: Option<String>,
    pub binaries: Vec<String>,
    pub recipe: Recipe,
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.version)
    }
}

/// A problem in the manifest file: file, line, column, field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: {}{message}", path.display(), field.as_ref().map(|f| format!("field `{f}`: ")).unwrap_or_default())]
pub struct ManifestError {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub field: Option<String>,
    pub message: String,
}

/// A `name[@version]` request that the manifest cannot satisfy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("unknown client `{name}` (known: {})", known.join(", "))]
    UnknownClient { name: String, known: Vec<String> },
    #[error("{name}@{version} is not pinned in {} (pinned: {})", manifest.display(), pinned.join(", "))]
    UnknownVersion {
        name: String,
        version: String,
        pinned: Vec<String>,
        manifest: PathBuf,
    },
}

// ---------------------------------------------------------------- raw TOML shape

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    client: Vec<Spanned<RawClient>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    name: Spanned<String>,
    method: Spanned<String>,
    #[serde(default)]
    aliases: Vec<Spanned<String>>,
    description: Option<String>,
    #[serde(default)]
    binaries: Vec<String>,
    #[serde(default)]
    requires: Vec<Spanned<String>>,
    default: Option<Spanned<String>>,
    #[serde(default)]
    version: Vec<Spanned<RawVersion>>,
    // go
    module: Option<Spanned<String>>,
    main: Option<Spanned<Vec<String>>>,
    build: Option<Spanned<String>>,
    cgo: Option<Spanned<bool>>,
    tags: Option<Spanned<Vec<String>>>,
    ldflags: Option<Spanned<String>>,
    sumdb: Option<Spanned<bool>>,
    package: Option<Spanned<String>>,
    // debian
    packages: Option<Spanned<Vec<String>>>,
    // maven
    artifact: Option<Spanned<String>>,
    extra_artifacts: Option<Spanned<Vec<String>>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVersion {
    version: Spanned<String>,
    note: Option<String>,
    main: Option<Spanned<Vec<String>>>,
    ldflags: Option<Spanned<String>>,
}

// ---------------------------------------------------------------- parsing

impl Manifest {
    /// Read and validate a manifest file.
    pub fn load(path: impl AsRef<Path>) -> Result<Manifest, ManifestError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ManifestError {
            path: path.to_path_buf(),
            line: 0,
            column: 0,
            field: None,
            message: format!("cannot read: {e}"),
        })?;
        Manifest::parse(path, &text)
    }

    /// Parse manifest text; `path` is only used in messages.
    pub fn parse(path: impl AsRef<Path>, text: &str) -> Result<Manifest, ManifestError> {
        let cx = Cx {
            path: path.as_ref(),
            text,
        };
        let raw: RawFile = toml::from_str(text).map_err(|e| cx.de_error(&e))?;
        let mut clients: Vec<ClientDef> = Vec::new();
        let mut names: BTreeSet<String> = BTreeSet::new();
        for rc in &raw.client {
            let def = cx.client(rc.get_ref(), rc.span())?;
            for n in std::iter::once(&def.name).chain(&def.aliases) {
                if !names.insert(n.clone()) {
                    let span = if *n == def.name {
                        rc.get_ref().name.span()
                    } else {
                        rc.get_ref()
                            .aliases
                            .iter()
                            .find(|a| a.get_ref() == n)
                            .map_or(rc.span(), |a| a.span())
                    };
                    return Err(cx.err(
                        span,
                        "name",
                        format!("client name or alias `{n}` is used twice"),
                    ));
                }
            }
            clients.push(def);
        }
        // `requires` must name known clients.
        for rc in &raw.client {
            for r in &rc.get_ref().requires {
                if !names.contains(r.get_ref()) {
                    return Err(cx.err(
                        r.span(),
                        "requires",
                        format!("unknown client `{}`", r.get_ref()),
                    ));
                }
            }
        }
        if clients.is_empty() {
            return Err(cx.err(0..0, "client", "no [[client]] entries".into()));
        }
        Ok(Manifest {
            path: path.as_ref().to_path_buf(),
            clients,
        })
    }
}

struct Cx<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Cx<'_> {
    fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
        (line, col)
    }

    fn err(&self, span: Range<usize>, field: &str, message: String) -> ManifestError {
        let (line, column) = self.line_col(span.start);
        ManifestError {
            path: self.path.to_path_buf(),
            line,
            column,
            field: Some(field.to_string()),
            message,
        }
    }

    /// A toml/serde error: take the line from its span and the field from the message
    /// (`unknown field `x``, `missing field `x``) or from the `key =` on that line.
    fn de_error(&self, e: &toml::de::Error) -> ManifestError {
        let span = e.span().unwrap_or(0..0);
        let (line, column) = self.line_col(span.start);
        let message = e.message().trim().to_string();
        let field = backticked_field(&message).or_else(|| {
            let l = self.text.lines().nth(line.saturating_sub(1))?;
            let (key, _) = l.split_once('=')?;
            let key = key.trim();
            (!key.is_empty()
                && key
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-.\"".contains(c)))
            .then(|| key.trim_matches('"').to_string())
        });
        ManifestError {
            path: self.path.to_path_buf(),
            line,
            column,
            field,
            message,
        }
    }

    fn client(&self, rc: &RawClient, span: Range<usize>) -> Result<ClientDef, ManifestError> {
        let name = rc.name.get_ref().trim().to_string();
        if name.is_empty() || !name.chars().all(valid_name_char) {
            return Err(self.err(
                rc.name.span(),
                "name",
                format!("invalid client name `{name}` (use [a-z0-9._-])"),
            ));
        }
        for a in &rc.aliases {
            if a.get_ref().is_empty() || !a.get_ref().chars().all(valid_name_char) {
                return Err(self.err(
                    a.span(),
                    "aliases",
                    format!("invalid alias `{}`", a.get_ref()),
                ));
            }
        }
        let in_client = |m: &str| format!("client `{name}`: {m}");

        // versions
        if rc.version.is_empty() {
            return Err(self.err(span, "version", in_client("no [[client.version]] entries")));
        }
        let mut versions: Vec<VersionDef> = Vec::new();
        for v in &rc.version {
            let raw = v.get_ref();
            let s = raw.version.get_ref().trim();
            if s.is_empty() || s.starts_with('v') || s.contains('@') || s == "latest" {
                return Err(self.err(
                    raw.version.span(),
                    "version",
                    in_client(&format!(
                        "bad version `{s}`: write a concrete version without a leading `v`"
                    )),
                ));
            }
            if versions.iter().any(|x| x.version == s) {
                return Err(self.err(
                    raw.version.span(),
                    "version",
                    in_client(&format!("version `{s}` pinned twice")),
                ));
            }
            if rc.method.get_ref() != "go" {
                let over = [
                    ("main", raw.main.as_ref().map(|m| m.span())),
                    ("ldflags", raw.ldflags.as_ref().map(|l| l.span())),
                ];
                if let Some((f, Some(sp))) = over.into_iter().find(|(_, sp)| sp.is_some()) {
                    return Err(self.err(
                        sp,
                        f,
                        in_client(&format!("`{f}` overrides apply to method \"go\" only")),
                    ));
                }
            }
            if let Some(m) = &raw.main {
                check_main(self, m, &in_client)?;
            }
            versions.push(VersionDef {
                version: s.to_string(),
                note: raw.note.clone(),
                main: raw.main.as_ref().map(|m| m.get_ref().clone()),
                ldflags: raw.ldflags.as_ref().map(|l| l.get_ref().clone()),
            });
        }
        versions.sort_by(|a, b| compare_versions(&b.version, &a.version));
        let default_version = match &rc.default {
            Some(d) => {
                if !versions.iter().any(|v| &v.version == d.get_ref()) {
                    return Err(self.err(
                        d.span(),
                        "default",
                        in_client(&format!(
                            "default `{}` is not a pinned version",
                            d.get_ref()
                        )),
                    ));
                }
                d.get_ref().clone()
            }
            None => versions[0].version.clone(),
        };

        // method-specific fields
        let method = rc.method.get_ref().as_str();
        let go_only: [(&str, Option<Range<usize>>); 8] = [
            ("sumdb", rc.sumdb.as_ref().map(|s| s.span())),
            ("package", rc.package.as_ref().map(|s| s.span())),
            ("module", rc.module.as_ref().map(|s| s.span())),
            ("main", rc.main.as_ref().map(|s| s.span())),
            ("build", rc.build.as_ref().map(|s| s.span())),
            ("cgo", rc.cgo.as_ref().map(|s| s.span())),
            ("tags", rc.tags.as_ref().map(|s| s.span())),
            ("ldflags", rc.ldflags.as_ref().map(|s| s.span())),
        ];
        let debian_only = [("packages", rc.packages.as_ref().map(|s| s.span()))];
        let maven_only = [
            ("artifact", rc.artifact.as_ref().map(|s| s.span())),
            (
                "extra_artifacts",
                rc.extra_artifacts.as_ref().map(|s| s.span()),
            ),
        ];
        let reject = |fields: &[(&str, Option<Range<usize>>)]| -> Result<(), ManifestError> {
            for (f, s) in fields {
                if let Some(s) = s {
                    return Err(self.err(
                        s.clone(),
                        f,
                        in_client(&format!("`{f}` does not apply to method `{method}`")),
                    ));
                }
            }
            Ok(())
        };
        let required = |field: &str| {
            self.err(
                span.clone(),
                field,
                in_client(&format!("method `{method}` needs `{field}`")),
            )
        };

        let method = match method {
            "go" => {
                reject(&debian_only)?;
                reject(&maven_only)?;
                let module = rc.module.as_ref().ok_or_else(|| required("module"))?;
                if module.get_ref().is_empty() || module.get_ref().contains('@') {
                    return Err(self.err(
                        module.span(),
                        "module",
                        in_client("module path must be non-empty and without @version"),
                    ));
                }
                let main = rc.main.as_ref().ok_or_else(|| required("main"))?;
                check_main(self, main, &in_client)?;
                let build = match rc.build.as_ref().map(|b| (b.get_ref().as_str(), b.span())) {
                    None | Some(("install", _)) => GoBuild::Install,
                    Some(("module-dir", _)) => GoBuild::ModuleDir,
                    Some((other, s)) => {
                        return Err(self.err(
                            s,
                            "build",
                            in_client(&format!(
                                "unknown build `{other}` (expected \"install\" or \"module-dir\")"
                            )),
                        ));
                    }
                };
                let package = match rc
                    .package
                    .as_ref()
                    .map(|p| (p.get_ref().as_str(), p.span()))
                {
                    None => None,
                    Some(("cnb-lifecycle", _)) if build == GoBuild::ModuleDir => {
                        Some(GoPackage::CnbLifecycle)
                    }
                    Some(("cnb-lifecycle", s)) => {
                        return Err(self.err(
                            s,
                            "package",
                            in_client("package = \"cnb-lifecycle\" needs build = \"module-dir\""),
                        ));
                    }
                    Some((other, s)) => {
                        return Err(self.err(
                            s,
                            "package",
                            in_client(&format!(
                                "unknown package `{other}` (expected \"cnb-lifecycle\")"
                            )),
                        ));
                    }
                };
                MethodDef::Go {
                    module: module.get_ref().clone(),
                    main: main.get_ref().clone(),
                    build,
                    cgo: rc.cgo.as_ref().is_some_and(|c| *c.get_ref()),
                    tags: rc
                        .tags
                        .as_ref()
                        .map(|t| t.get_ref().clone())
                        .unwrap_or_default(),
                    ldflags: rc.ldflags.as_ref().map(|l| l.get_ref().clone()),
                    sumdb: rc.sumdb.as_ref().is_none_or(|s| *s.get_ref()),
                    package,
                }
            }
            "debian" => {
                reject(&go_only)?;
                reject(&maven_only)?;
                let packages = rc.packages.as_ref().ok_or_else(|| required("packages"))?;
                if packages.get_ref().is_empty() {
                    return Err(self.err(
                        packages.span(),
                        "packages",
                        in_client("empty package list"),
                    ));
                }
                MethodDef::Debian {
                    packages: packages.get_ref().clone(),
                }
            }
            "maven" => {
                reject(&go_only)?;
                reject(&debian_only)?;
                let artifact = rc.artifact.as_ref().ok_or_else(|| required("artifact"))?;
                let parts: Vec<&str> = artifact.get_ref().split(':').collect();
                if parts.len() != 2 || parts.iter().any(|p| p.is_empty()) {
                    return Err(self.err(
                        artifact.span(),
                        "artifact",
                        in_client("expected \"groupId:artifactId\" (the version comes from [[client.version]])"),
                    ));
                }
                let extra = rc
                    .extra_artifacts
                    .as_ref()
                    .map(|e| e.get_ref().clone())
                    .unwrap_or_default();
                if let Some(bad) = extra.iter().find(|a| {
                    let n = a.split(':').count();
                    !(3..=5).contains(&n) || a.split(':').any(str::is_empty)
                }) {
                    return Err(self.err(
                        rc.extra_artifacts
                            .as_ref()
                            .map_or(span.clone(), |e| e.span()),
                        "extra_artifacts",
                        in_client(&format!("`{bad}` is not groupId:artifactId:version")),
                    ));
                }
                MethodDef::Maven {
                    group_id: parts[0].to_string(),
                    artifact_id: parts[1].to_string(),
                    extra_artifacts: extra,
                }
            }
            other => {
                return Err(self.err(
                    rc.method.span(),
                    "method",
                    in_client(&format!(
                        "unknown method `{other}` (expected \"go\", \"debian\" or \"maven\")"
                    )),
                ));
            }
        };
        if rc.binaries.is_empty() && !matches!(method, MethodDef::Maven { .. }) {
            return Err(self.err(span, "binaries", in_client("list the binaries it provides")));
        }
        Ok(ClientDef {
            name,
            aliases: rc.aliases.iter().map(|a| a.get_ref().clone()).collect(),
            description: rc.description.clone(),
            binaries: rc.binaries.clone(),
            requires: rc.requires.iter().map(|r| r.get_ref().clone()).collect(),
            default_version,
            versions,
            method,
        })
    }
}

fn check_main(
    cx: &Cx<'_>,
    main: &Spanned<Vec<String>>,
    in_client: &dyn Fn(&str) -> String,
) -> Result<(), ManifestError> {
    if main.get_ref().is_empty()
        || main
            .get_ref()
            .iter()
            .any(|p| !(p == "." || p.starts_with("./")))
    {
        return Err(cx.err(
            main.span(),
            "main",
            in_client("list package dirs inside the module, like \"./cmd/crane\" or \".\""),
        ));
    }
    Ok(())
}

fn valid_name_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c)
}

fn backticked_field(message: &str) -> Option<String> {
    for prefix in [
        "unknown field `",
        "missing field `",
        "duplicate key `",
        "duplicate field `",
    ] {
        if let Some(i) = message.find(prefix) {
            let rest = &message[i + prefix.len()..];
            return rest.find('`').map(|j| rest[..j].to_string());
        }
    }
    None
}

/// Compare dotted versions numerically where both parts are numbers (`0.12.5 < 0.34.2`).
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('v');
    let b = b.trim_start_matches('v');
    let mut ai = a.split(['.', '-', '+']);
    let mut bi = b.split(['.', '-', '+']);
    loop {
        match (ai.next(), bi.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let o = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(x), Ok(y)) => x.cmp(&y),
                    _ => x.cmp(y),
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

// ---------------------------------------------------------------- resolving

impl Manifest {
    /// The client called `name` (or with that alias).
    pub fn client(&self, name: &str) -> Option<&ClientDef> {
        self.clients
            .iter()
            .find(|c| c.name == name || c.aliases.iter().any(|a| a == name))
    }

    /// `nerdctl` → the default version; `nerdctl@2.0.0` / `nerdctl@v2.0.0` → that one;
    /// `jib@latest` → the newest pinned. Aliases (`buildctl`, `docker.io`) resolve to
    /// their client.
    pub fn resolve(&self, request: &str) -> Result<Spec, ResolveError> {
        let (name, version) = match request.split_once('@') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (request.trim(), None),
        };
        let client = self
            .client(name)
            .ok_or_else(|| ResolveError::UnknownClient {
                name: name.to_string(),
                known: self.clients.iter().map(|c| c.name.clone()).collect(),
            })?;
        let v = match version {
            None | Some("") | Some("default") => client.default_version.as_str(),
            Some("latest") => client.versions[0].version.as_str(),
            Some(v) => {
                let v = v.strip_prefix('v').unwrap_or(v);
                client
                    .versions
                    .iter()
                    .find(|x| x.version == v)
                    .map(|x| x.version.as_str())
                    .ok_or_else(|| ResolveError::UnknownVersion {
                        name: client.name.clone(),
                        version: v.to_string(),
                        pinned: client.versions.iter().map(|x| x.version.clone()).collect(),
                        manifest: self.path.clone(),
                    })?
            }
        };
        Ok(client.spec(v))
    }

    /// Resolve several requests, add what they `require` (default versions), drop duplicates.
    /// Requested specs come first, in order; requirements follow.
    pub fn resolve_all<S: AsRef<str>>(
        &self,
        requests: &[S],
        with_requires: bool,
    ) -> Result<Vec<Spec>, ResolveError> {
        let mut out: Vec<Spec> = Vec::new();
        for r in requests {
            let s = self.resolve(r.as_ref())?;
            if !out.contains(&s) {
                out.push(s);
            }
        }
        if with_requires {
            let mut i = 0;
            while i < out.len() {
                let reqs = self
                    .client(&out[i].name)
                    .map(|c| c.requires.clone())
                    .unwrap_or_default();
                for r in reqs {
                    if !out.iter().any(|s| s.name == r) {
                        out.push(self.resolve(&r)?);
                    }
                }
                i += 1;
            }
        }
        Ok(out)
    }

    /// Every pinned version of every client, in file order.
    pub fn all_specs(&self) -> Vec<Spec> {
        self.clients
            .iter()
            .flat_map(|c| c.versions.iter().map(|v| c.spec(&v.version)))
            .collect()
    }
}

impl ClientDef {
    fn spec(&self, version: &str) -> Spec {
        let vdef = self.versions.iter().find(|v| v.version == version);
        let note = vdef.and_then(|v| v.note.clone());
        let recipe = match &self.method {
            MethodDef::Go {
                module,
                main,
                build,
                cgo,
                tags,
                ldflags,
                sumdb,
                package,
            } => Recipe::Go {
                module: module.clone(),
                module_version: format!("v{version}"),
                main: vdef
                    .and_then(|v| v.main.clone())
                    .unwrap_or_else(|| main.clone()),
                build: *build,
                cgo: *cgo,
                tags: tags.clone(),
                ldflags: vdef
                    .and_then(|v| v.ldflags.as_ref())
                    .or(ldflags.as_ref())
                    .map(|l| l.replace("{version}", version)),
                sumdb: *sumdb,
                package: *package,
            },
            MethodDef::Debian { packages } => Recipe::Debian {
                packages: packages.clone(),
            },
            MethodDef::Maven {
                group_id,
                artifact_id,
                extra_artifacts,
            } => Recipe::Maven {
                coordinates: format!("{group_id}:{artifact_id}:{version}"),
                extra_artifacts: extra_artifacts.clone(),
            },
        };
        Spec {
            name: self.name.clone(),
            version: version.to_string(),
            note,
            binaries: self.binaries.clone(),
            recipe,
        }
    }
}

/// `$REGCOMPAT_CLIENTS_MANIFEST`, else `clients.toml` at the workspace root.
pub fn default_manifest_path() -> PathBuf {
    if let Some(p) = std::env::var_os("REGCOMPAT_CLIENTS_MANIFEST") {
        return PathBuf::from(p);
    }
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    crate_dir.parent().unwrap_or(crate_dir).join("clients.toml")
}
