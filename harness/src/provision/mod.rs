//! Client provisioning: install the real registry clients pinned in `clients.toml`
//! into a per-user cache, and tell the harness where they are.
//!
//! ```no_run
//! use harness::provision::{self, Manifest, Progress};
//! let m = Manifest::load(provision::default_manifest_path())?;
//! let spec = m.resolve("nerdctl@2.0.3")?;
//! match provision::installed(&spec) {
//!     Some(i) => println!("nerdctl at {}", i.binary("nerdctl").unwrap().display()),
//!     None => {
//!         let results = provision::install(&[spec], &Progress::auto());
//!         results[0].as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
//!     }
//! }
//! # Ok::<(), anyhow::Error>(())
//! ```
//!
//! Layout: `<cache>/clients/<name>/<version>/{bin/, installed.json, install.log}`. The
//! stamp `installed.json` is written last, so an interrupted install is redone.
//! Network: only the Go module proxy (`direct` is stripped from GOPROXY), Debian's apt
//! mirror and Maven Central.

mod debian;
mod go;
mod manifest;
mod maven;
mod progress;

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use manifest::{
    ClientDef, GoBuild, GoPackage, Manifest, ManifestError, Recipe, ResolveError, Spec, VersionDef,
    compare_versions, default_manifest_path,
};
pub use progress::Progress;

/// Stamp file name inside `<cache>/clients/<name>/<version>/`.
pub const STAMP_FILE: &str = "installed.json";
/// Bumped when the stamp format changes; older stamps count as "not installed".
pub const STAMP_SCHEMA: u32 = 1;

/// The provisioning cache root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache {
    pub root: PathBuf,
}

impl Cache {
    /// `$REGCOMPAT_CACHE_DIR`, else `$XDG_CACHE_HOME/regcompat`, else `~/.cache/regcompat`.
    pub fn from_env() -> Cache {
        let nonempty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        let root = if let Some(d) = nonempty("REGCOMPAT_CACHE_DIR") {
            PathBuf::from(d)
        } else if let Some(d) = nonempty("XDG_CACHE_HOME") {
            PathBuf::from(d).join("regcompat")
        } else if let Some(h) = nonempty("HOME") {
            PathBuf::from(h).join(".cache/regcompat")
        } else {
            PathBuf::from("/tmp/regcompat-cache")
        };
        Cache { root }
    }

    pub fn new(root: impl Into<PathBuf>) -> Cache {
        Cache { root: root.into() }
    }

    /// `<root>/clients/<name>/<version>`.
    pub fn client_dir(&self, spec: &Spec) -> PathBuf {
        self.root
            .join("clients")
            .join(&spec.name)
            .join(&spec.version)
    }

    /// Shared Maven local repository used for Jib (`-Dmaven.repo.local=`).
    pub fn maven_repo(&self) -> PathBuf {
        self.root.join("maven/repository")
    }

    /// Is `spec` installed here? Filesystem only: the stamp exists, matches the spec's
    /// name, version and recipe, and every binary it lists exists.
    pub fn installed(&self, spec: &Spec) -> Option<Installed> {
        let dir = self.client_dir(spec);
        let text = fs::read_to_string(dir.join(STAMP_FILE)).ok()?;
        let stamp: Stamp = serde_json::from_str(&text).ok()?;
        if stamp.schema != STAMP_SCHEMA
            || stamp.name != spec.name
            || stamp.version != spec.version
            || stamp.recipe_sha256 != recipe_hash(spec)
        {
            return None;
        }
        let bin_dir = dir.join("bin");
        let mut binaries = BTreeMap::new();
        for b in &spec.binaries {
            let p = bin_dir.join(b);
            // follows symlinks: a dangling link to an uninstalled Debian binary fails here
            if !p.is_file() || !stamp.binaries.contains_key(b) {
                return None;
            }
            binaries.insert(b.clone(), p);
        }
        for f in &stamp.files {
            if !f.is_file() {
                return None;
            }
        }
        Some(Installed {
            name: spec.name.clone(),
            version: spec.version.clone(),
            dir,
            bin_dir,
            binaries,
            stamp,
        })
    }
}

/// What an installed client looks like to the harness.
#[derive(Debug, Clone, PartialEq)]
pub struct Installed {
    pub name: String,
    pub version: String,
    /// `<cache>/clients/<name>/<version>`.
    pub dir: PathBuf,
    /// `<dir>/bin`: put it first on PATH for this client.
    pub bin_dir: PathBuf,
    /// binary name → `<bin_dir>/<name>` (a symlink for Debian clients).
    pub binaries: BTreeMap<String, PathBuf>,
    pub stamp: Stamp,
}

impl Installed {
    pub fn binary(&self, name: &str) -> Option<&Path> {
        self.binaries.get(name).map(PathBuf::as_path)
    }
}

/// `installed.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stamp {
    pub schema: u32,
    pub name: String,
    pub version: String,
    /// e.g. "go install", "apt", "maven".
    pub method: String,
    /// sha256 of the recipe (method fields + binaries); a manifest change reinstalls.
    pub recipe_sha256: String,
    pub recipe: Recipe,
    /// Unix seconds.
    pub installed_at: u64,
    pub install_seconds: f64,
    /// binary name → where it really is + its sha256.
    pub binaries: BTreeMap<String, StampBinary>,
    /// Other files that must exist (e.g. the Jib plugin jar).
    #[serde(default)]
    pub files: Vec<PathBuf>,
    /// Method-specific facts (Debian package versions, Maven repo, go version...).
    #[serde(default)]
    pub details: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StampBinary {
    /// The real file (the Debian path for symlinked binaries).
    pub path: PathBuf,
    pub sha256: String,
}

/// Why one client could not be installed.
#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("{spec}: {message}")]
    Failed { spec: String, message: String },
    #[error("{spec}: {context}: {source}")]
    Io {
        spec: String,
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl ProvisionError {
    pub(crate) fn failed(spec: &Spec, message: impl Into<String>) -> Self {
        ProvisionError::Failed {
            spec: spec.to_string(),
            message: message.into(),
        }
    }
    pub(crate) fn io(spec: &Spec, context: impl Into<String>, source: std::io::Error) -> Self {
        ProvisionError::Io {
            spec: spec.to_string(),
            context: context.into(),
            source,
        }
    }
    /// The reason without the `name@version: ` prefix.
    pub fn reason(&self) -> String {
        match self {
            ProvisionError::Failed { message, .. } => message.clone(),
            ProvisionError::Io {
                context, source, ..
            } => format!("{context}: {source}"),
        }
    }
}

/// How an install ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Installed,
    Cached,
}

/// Options for [`install_with`].
#[derive(Debug, Clone)]
pub struct InstallOptions {
    pub cache: Cache,
    /// Reinstall even when the stamp says installed.
    pub force: bool,
}

impl Default for InstallOptions {
    fn default() -> Self {
        InstallOptions {
            cache: Cache::from_env(),
            force: false,
        }
    }
}

/// Is `spec` installed in the default cache ([`Cache::from_env`])? Never installs.
pub fn installed(spec: &Spec) -> Option<Installed> {
    Cache::from_env().installed(spec)
}

/// Install every spec (sequentially; one failure does not stop the others) into the
/// default cache. Already-installed specs are reported as cached and not touched.
pub fn install(specs: &[Spec], progress: &Progress) -> Vec<Result<Installed, ProvisionError>> {
    install_with(specs, progress, &InstallOptions::default())
        .into_iter()
        .map(|r| r.map(|(i, _)| i))
        .collect()
}

/// [`install`] with options, also telling whether each was installed or cached.
pub fn install_with(
    specs: &[Spec],
    progress: &Progress,
    opts: &InstallOptions,
) -> Vec<Result<(Installed, Outcome), ProvisionError>> {
    let mut cx = Context {
        cache: opts.cache.clone(),
        apt_updated: false,
    };
    let total = specs.len();
    let mut out = Vec::with_capacity(total);
    for (i, spec) in specs.iter().enumerate() {
        let task = progress.task(i + 1, total, spec);
        let r = install_one(&mut cx, spec, opts.force, &task);
        match &r {
            Ok((inst, Outcome::Cached)) => task.finish_cached(&inst.bin_dir),
            Ok((inst, Outcome::Installed)) => {
                task.finish_installed(&inst.bin_dir, inst.stamp.install_seconds)
            }
            Err(e) => task.finish_failed(&e.reason()),
        }
        out.push(r);
    }
    out
}

pub(crate) struct Context {
    pub cache: Cache,
    pub apt_updated: bool,
}

fn install_one(
    cx: &mut Context,
    spec: &Spec,
    force: bool,
    task: &progress::Task<'_>,
) -> Result<(Installed, Outcome), ProvisionError> {
    let cached = if force {
        None
    } else {
        cx.cache.installed(spec)
    };
    if let Some(i) = cached {
        // Debian: the package may have been removed/upgraded behind our back.
        let still_ok = match &spec.recipe {
            Recipe::Debian { packages } => debian::still_installed(spec, packages),
            _ => true,
        };
        if still_ok {
            return Ok((i, Outcome::Cached));
        }
    }
    let dir = cx.cache.client_dir(spec);
    let bin = dir.join("bin");
    // Stamp first out, so a crash from here on means "not installed".
    match fs::remove_file(dir.join(STAMP_FILE)) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(ProvisionError::io(spec, "removing old stamp", e)),
    }
    if bin.exists() {
        fs::remove_dir_all(&bin).map_err(|e| ProvisionError::io(spec, "clearing bin/", e))?;
    }
    fs::create_dir_all(&bin)
        .map_err(|e| ProvisionError::io(spec, format!("creating {}", bin.display()), e))?;
    let log = dir.join("install.log");
    let mut log_file =
        Log::create(&log).map_err(|e| ProvisionError::io(spec, "creating install.log", e))?;

    let started = Instant::now();
    let result = match &spec.recipe {
        Recipe::Go { .. } => go::install(cx, spec, &dir, &mut log_file, task),
        Recipe::Debian { packages } => {
            debian::install(cx, spec, packages, &dir, &mut log_file, task)
        }
        Recipe::Maven { .. } => maven::install(cx, spec, &dir, &mut log_file, task),
    }?;
    let elapsed = started.elapsed();

    // Every declared binary must be there, then the stamp, last.
    let mut binaries = BTreeMap::new();
    for b in &spec.binaries {
        let p = bin.join(b);
        let real = fs::canonicalize(&p).map_err(|e| {
            ProvisionError::failed(
                spec,
                format!(
                    "declared binary `{b}` missing after install ({}: {e})",
                    p.display()
                ),
            )
        })?;
        let sha256 = sha256_file(&real)
            .map_err(|e| ProvisionError::io(spec, format!("hashing {}", real.display()), e))?;
        binaries.insert(b.clone(), StampBinary { path: real, sha256 });
    }
    let stamp = Stamp {
        schema: STAMP_SCHEMA,
        name: spec.name.clone(),
        version: spec.version.clone(),
        method: spec.recipe.method().to_string(),
        recipe_sha256: recipe_hash(spec),
        recipe: spec.recipe.clone(),
        installed_at: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs(),
        install_seconds: (elapsed.as_secs_f64() * 10.0).round() / 10.0,
        binaries,
        files: result.files,
        details: result.details,
    };
    write_stamp(&dir, &stamp).map_err(|e| ProvisionError::io(spec, "writing installed.json", e))?;
    cx.cache
        .installed(spec)
        .map(|i| (i, Outcome::Installed))
        .ok_or_else(|| {
            ProvisionError::failed(spec, "stamp written but the install does not verify")
        })
}

/// What a method reports besides the binaries it put in `bin/`.
#[derive(Default)]
pub(crate) struct MethodResult {
    pub files: Vec<PathBuf>,
    pub details: BTreeMap<String, String>,
}

/// Write `installed.json` atomically (tmp + rename).
pub fn write_stamp(dir: &Path, stamp: &Stamp) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{STAMP_FILE}.tmp"));
    let mut f = fs::File::create(&tmp)?;
    f.write_all(serde_json::to_string_pretty(stamp)?.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    fs::rename(&tmp, dir.join(STAMP_FILE))
}

/// sha256 of the spec's recipe and binaries: the stamp is only valid for this recipe.
pub fn recipe_hash(spec: &Spec) -> String {
    let v = serde_json::json!({ "recipe": spec.recipe, "binaries": spec.binaries });
    hex::encode(Sha256::digest(v.to_string().as_bytes()))
}

pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// `install.log`: every command and its output, appended.
pub(crate) struct Log {
    path: PathBuf,
    file: fs::File,
}

impl Log {
    fn create(path: &Path) -> std::io::Result<Log> {
        Ok(Log {
            path: path.to_path_buf(),
            file: fs::File::create(path)?,
        })
    }

    pub fn note(&mut self, line: &str) {
        let _ = writeln!(self.file, "{line}");
    }

    /// Run `cmd` with stdout+stderr appended to the log. On a non-zero exit the error
    /// carries the command and the last lines of its output.
    pub fn run(
        &mut self,
        spec: &Spec,
        what: &str,
        cmd: &mut Command,
    ) -> Result<(), ProvisionError> {
        self.note(&format!("\n$ {}", show_command(cmd)));
        let start = self.file.metadata().map(|m| m.len()).unwrap_or(0);
        let out = self
            .file
            .try_clone()
            .map_err(|e| ProvisionError::io(spec, "log", e))?;
        let err = self
            .file
            .try_clone()
            .map_err(|e| ProvisionError::io(spec, "log", e))?;
        let status = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .status()
            .map_err(|e| {
                ProvisionError::io(
                    spec,
                    format!("{what}: cannot run {:?}", cmd.get_program()),
                    e,
                )
            })?;
        if status.success() {
            return Ok(());
        }
        Err(self.failure(spec, what, &status.to_string(), start))
    }

    /// Run and capture stdout (stderr to the log).
    pub fn output(
        &mut self,
        spec: &Spec,
        what: &str,
        cmd: &mut Command,
    ) -> Result<String, ProvisionError> {
        self.note(&format!("\n$ {}", show_command(cmd)));
        let start = self.file.metadata().map(|m| m.len()).unwrap_or(0);
        let err = self
            .file
            .try_clone()
            .map_err(|e| ProvisionError::io(spec, "log", e))?;
        let out = cmd.stdin(Stdio::null()).stderr(err).output().map_err(|e| {
            ProvisionError::io(
                spec,
                format!("{what}: cannot run {:?}", cmd.get_program()),
                e,
            )
        })?;
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if out.status.success() {
            return Ok(stdout);
        }
        self.note(&stdout);
        Err(self.failure(spec, what, &out.status.to_string(), start))
    }

    /// "<what> failed (<status>): <last output line>", then the log path and its tail.
    fn failure(&mut self, spec: &Spec, what: &str, status: &str, start: u64) -> ProvisionError {
        let lines = self.tail_lines(start, 12);
        let last = summary_line(&lines);
        let tail = lines
            .iter()
            .map(|l| format!("    {l}"))
            .collect::<Vec<_>>()
            .join("\n");
        ProvisionError::failed(
            spec,
            format!(
                "{what} failed ({status}): {last}\n  log {}:\n{tail}",
                self.path.display()
            ),
        )
    }

    fn tail_lines(&mut self, start: u64, lines: usize) -> Vec<String> {
        let _ = self.file.flush();
        let text = fs::read(&self.path).unwrap_or_default();
        let text = String::from_utf8_lossy(&text[(start as usize).min(text.len())..]).into_owned();
        let all: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with("go: downloading "))
            .collect();
        all[all.len().saturating_sub(lines)..]
            .iter()
            .map(|l| l.to_string())
            .collect()
    }
}

/// The last unindented output line, with its indented continuation lines joined
/// (Go prints "go: pkg@v:" then tab-indented detail).
pub(crate) fn summary_line(lines: &[String]) -> String {
    // `go ... -json` failures: the JSON's "Error" says it all.
    if let Some(err) = lines.iter().rev().find_map(|l| {
        let v = l
            .trim()
            .strip_prefix("\"Error\":")?
            .trim()
            .trim_end_matches(',');
        serde_json::from_str::<String>(v).ok()
    }) {
        return err.split_whitespace().collect::<Vec<_>>().join(" ");
    }
    let Some(i) = lines
        .iter()
        .rposition(|l| !l.starts_with(char::is_whitespace) && !l.starts_with("$ "))
    else {
        return lines
            .last()
            .map(|l| l.trim().to_string())
            .unwrap_or_default();
    };
    let mut s = lines[i].trim().to_string();
    for l in &lines[i + 1..] {
        if !l.starts_with(char::is_whitespace) {
            break;
        }
        s.push(' ');
        s.push_str(l.trim());
    }
    s
}

fn show_command(cmd: &Command) -> String {
    let mut s = String::new();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            s.push_str(&format!("{}={} ", k.to_string_lossy(), v.to_string_lossy()));
        }
    }
    if let Some(d) = cmd.get_current_dir() {
        s = format!("(cd {}) {s}", d.display());
    }
    s.push_str(&cmd.get_program().to_string_lossy());
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// First `name` on PATH.
pub(crate) fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// (Re)create `link` → `target`.
pub(crate) fn symlink(target: &Path, link: &Path) -> std::io::Result<()> {
    match fs::remove_file(link) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::os::unix::fs::symlink(target, link)
}

#[cfg(test)]
mod tests;
