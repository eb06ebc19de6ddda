//! `cargo xtask conformance`: build the pinned OCI distribution-spec conformance suite
//! (through the Go module proxy, cached), start a fresh `fake-registry serve` on
//! loopback, run the suite against it with every workflow enabled, and judge the results.
//!
//! Exits non-zero unless the suite wrote `results.yaml`, exited 0, and reported no
//! failures and no errors. (The suite exits 0 when its own configuration fails to load,
//! so a missing `results.yaml` is a failure too.)

#[path = "conformance_report.rs"]
mod report;

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use harness::provision::Cache;

use report::Outcome;

/// Go module of the suite: `conformance/` of github.com/opencontainers/distribution-spec,
/// the redesigned suite (PR #588, commit a221f94) that `go build`s to a program writing
/// results.yaml, junit.xml and report.html.
const SUITE_MODULE: &str = "github.com/opencontainers/distribution-spec/conformance";

/// Pinned suite version: main at 97274622c111 (2026-08-31). It is the only version of
/// the module the Go module proxy serves here (`@latest`; no tags exist, and pseudo-versions
/// of a221f94 and 967efdc are refused), it contains the redesigned suite, and its
/// `conformance/` differs from 967efdc (2026-07-16, the commit the spec was read at) only by
/// disabling transparent HTTP compression in the suite's client (so Content-Length checks
/// hold against compressing servers) and by shipping a LICENSE file.
const SUITE_VERSION: &str = "v0.0.0-20260831232431-97274622c111";

/// Ready line timeout for `fake-registry serve`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// At most this many lines of failure listing.
const MAX_FAILURE_LINES: usize = 50;
/// At most this many message lines under each failing test.
const MSG_LINES_PER_TEST: usize = 3;

#[derive(clap::Args)]
pub struct Args {
    /// Use this fake-registry binary instead of building it with `cargo build -p fake-registry`.
    #[arg(long, value_name = "PATH")]
    registry_bin: Option<PathBuf>,
    /// Where the suite writes results.yaml, junit.xml and report.html, beside the logs
    /// [default: <target dir>/conformance].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Spec version the suite tests (OCI_VERSION); `dev` also requires the digest headers and
    /// tag parameters of the unreleased spec.
    #[arg(long, default_value = "1.1", value_parser = ["1.1", "dev", "1.0", "stable", "1.1+dev"])]
    oci_version: String,
    /// Only run tests whose full name starts with this (OCI_FILTER_TEST), e.g.
    /// "OCI Conformance Test/sha256 blobs".
    #[arg(long, value_name = "PREFIX")]
    filter: Option<String>,
    /// Also push sparse indexes (OCI_DATA_SPARSE=true; the registry gets --allow-sparse-index).
    #[arg(long)]
    sparse: bool,
    /// Set or override one suite variable, e.g. OCI_LOG=debug or
    /// OCI_API_MANIFESTS_DIGEST_HEADER=true. Repeatable; applied last.
    #[arg(long = "set", value_name = "OCI_KEY=VALUE")]
    set: Vec<String>,
    /// Report conformance failures but exit 0 (still fails if the suite did not run or
    /// wrote no results).
    #[arg(long)]
    keep_going: bool,
    /// Kill the suite after this many seconds.
    #[arg(long, value_name = "SECS", default_value_t = 600)]
    timeout: u64,
    /// Show the suite's own output on the terminal instead of only in <out>/conformance.log.
    #[arg(long, short)]
    verbose: bool,
    /// Rebuild the suite even when a cached binary exists.
    #[arg(long)]
    rebuild_suite: bool,
    /// Cache root [default: $REGCOMPAT_CACHE_DIR, $XDG_CACHE_HOME/regcompat, ~/.cache/regcompat].
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let overrides = parse_overrides(&args.set)?;
    let cache = args
        .cache_dir
        .clone()
        .map(Cache::new)
        .unwrap_or_else(Cache::from_env);
    let suite = ensure_suite(&cache, args.rebuild_suite)?;

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let root = crate::run_scenarios::workspace_root();
    let need_target = args.registry_bin.is_none() || args.out.is_none();
    let target = if need_target {
        Some(target_dir(&cargo, &root)?)
    } else {
        None
    };

    let registry_bin = match &args.registry_bin {
        Some(p) => p.clone(),
        None => build_fake_registry(&cargo, &root, target.as_ref().expect("target dir"))?,
    };
    if !registry_bin.is_file() {
        bail!(
            "fake-registry binary not found at {}",
            registry_bin.display()
        );
    }

    let out = match &args.out {
        Some(d) => std::path::absolute(d).with_context(|| format!("resolving {}", d.display()))?,
        None => target.as_ref().expect("target dir").join("conformance"),
    };
    fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    for stale in [
        "results.yaml",
        "junit.xml",
        "report.html",
        "conformance.log",
    ] {
        match fs::remove_file(out.join(stale)) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing stale {stale}")),
        }
    }

    // Every workflow on: the anonymous-mount workflow needs automatic content discovery,
    // which the registry (like distribution ≥ 2.8) leaves off by default.
    let mut serve_args = vec!["serve", "--listen", "127.0.0.1:0", "--automatic-mount"];
    if args.sparse {
        serve_args.push("--allow-sparse-index");
    }
    let registry_log = out.join("fake-registry.log");
    let registry = Registry::start(&registry_bin, &serve_args, &registry_log)?;
    eprintln!(
        "fake-registry ready at {} (log: {})",
        registry.url,
        registry_log.display()
    );

    let host = registry_host(&registry.url)?;
    let mut env: Vec<(String, String)> = vec![
        // Empty: never read an oci-conformance.yaml from anywhere.
        ("OCI_CONFIGURATION".into(), String::new()),
        ("OCI_REGISTRY".into(), host),
        ("OCI_TLS".into(), "disabled".into()),
        ("OCI_REPO1".into(), "conformance/repo1".into()),
        ("OCI_REPO2".into(), "conformance/repo2".into()),
        ("OCI_VERSION".into(), args.oci_version.clone()),
        ("OCI_RESULTS_DIR".into(), out.to_string_lossy().into_owned()),
    ];
    // Every API workflow the suite has (config.go's configAPI). The digest-header and
    // tag-parameter checks follow --oci-version (on for `dev`); set them with --set.
    for api in [
        "PING",
        "PULL",
        "PUSH",
        "BLOBS_ATOMIC",
        "BLOBS_DELETE",
        "BLOBS_MOUNT_ANONYMOUS",
        "BLOBS_UPLOAD_CANCEL",
        "MANIFESTS_ATOMIC",
        "MANIFESTS_DELETE",
        "TAGS_ATOMIC",
        "TAGS_DELETE",
        "TAGS_LIST",
        "REFERRER",
    ] {
        env.push((format!("OCI_API_{api}"), "true".into()));
    }
    // Every data set (config.go's configData); sparse only on request.
    for data in [
        "IMAGE",
        "INDEX",
        "INDEX_LIST",
        "ARTIFACT",
        "SUBJECT",
        "SUBJECT_MISSING",
        "ARTIFACT_LIST",
        "SUBJECT_LIST",
        "DATA_FIELD",
        "NONDISTRIBUTABLE",
        "CUSTOM_FIELDS",
        "NO_LAYERS",
        "EMPTY_BLOB",
        "SHA512",
    ] {
        env.push((format!("OCI_DATA_{data}"), "true".into()));
    }
    env.push(("OCI_DATA_SPARSE".into(), args.sparse.to_string()));
    if let Some(f) = &args.filter {
        env.push(("OCI_FILTER_TEST".into(), f.clone()));
    }
    env.extend(overrides);

    let log_path = out.join("conformance.log");
    eprintln!(
        "running conformance suite {SUITE_VERSION} (OCI_VERSION={}) against {} …",
        args.oci_version, registry.url
    );
    let started = Instant::now();
    let status = run_suite(
        &suite,
        &env,
        &out,
        &log_path,
        args.verbose,
        Duration::from_secs(args.timeout),
    )?;
    eprintln!(
        "suite finished in {:.1}s ({status}); output: {}",
        started.elapsed().as_secs_f64(),
        log_path.display()
    );
    drop(registry);

    judge(
        &out,
        &log_path,
        status,
        args.filter.is_some(),
        args.keep_going,
    )
}

/// `KEY=VALUE` pairs for --set; keys must be suite variables.
fn parse_overrides(set: &[String]) -> Result<Vec<(String, String)>> {
    set.iter()
        .map(|kv| {
            let (k, v) = kv
                .split_once('=')
                .with_context(|| format!("--set {kv:?}: expected OCI_KEY=VALUE"))?;
            if !k.starts_with("OCI_") {
                bail!("--set {kv:?}: only OCI_* variables are the suite's");
            }
            Ok((k.to_string(), v.to_string()))
        })
        .collect()
}

/// `cargo build -p fake-registry` (the dev profile, as everything else here); its binary.
pub(crate) fn build_fake_registry(
    cargo: &std::ffi::OsStr,
    root: &Path,
    target: &Path,
) -> Result<PathBuf> {
    eprintln!("building fake-registry (cargo build -p fake-registry) …");
    let st = Command::new(cargo)
        .args(["build", "-p", "fake-registry"])
        .current_dir(root)
        .status()
        .context("running cargo build -p fake-registry")?;
    if !st.success() {
        bail!("cargo build -p fake-registry failed ({st})");
    }
    let exe = format!("fake-registry{}", std::env::consts::EXE_SUFFIX);
    Ok(target.join("debug").join(exe))
}

/// The workspace's target directory, as cargo sees it (honours CARGO_TARGET_DIR and config).
pub(crate) fn target_dir(cargo: &std::ffi::OsStr, root: &Path) -> Result<PathBuf> {
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!("cargo metadata failed ({})", out.status);
    }
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("parsing cargo metadata output")?;
    let dir = v["target_directory"]
        .as_str()
        .context("cargo metadata has no target_directory")?;
    Ok(PathBuf::from(dir))
}

/// The cached suite binary, built first if missing:
/// `<cache>/conformance/<version>/conformance`.
fn ensure_suite(cache: &Cache, rebuild: bool) -> Result<PathBuf> {
    let dir = cache.root.join("conformance").join(SUITE_VERSION);
    let bin = dir.join(format!("conformance{}", std::env::consts::EXE_SUFFIX));
    if bin.is_file() && !rebuild {
        eprintln!(
            "conformance suite {SUITE_VERSION}: cached at {}",
            bin.display()
        );
        return Ok(bin);
    }
    eprintln!(
        "building conformance suite {SUITE_VERSION} ({SUITE_MODULE}, via the Go module proxy) …"
    );
    let started = Instant::now();
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // Install into a private directory, then rename: a binary at `bin` is always whole.
    let tmp = dir.join(format!(".build-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let result = (|| -> Result<()> {
        // `go install module@version` builds the module's own main package in module mode,
        // verified against its go.sum and the checksum database, outside any workspace.
        let st = Command::new("go")
            .args([
                "install",
                "-trimpath",
                "-ldflags",
                // The suite reports this as its "commit" (no VCS data in a module zip).
                &format!("-X main.Version={SUITE_VERSION}"),
                &format!("{SUITE_MODULE}@{SUITE_VERSION}"),
            ])
            .current_dir(&tmp)
            .env("GOBIN", &tmp)
            .env("GOFLAGS", "")
            .env("GOWORK", "off")
            .env("GO111MODULE", "on")
            // Use the machine's Go (the suite needs >= 1.24); never download a toolchain.
            .env("GOTOOLCHAIN", "local")
            .env("CGO_ENABLED", "0")
            .status()
            .context("running `go install` (is Go >= 1.24 installed and on PATH?)")?;
        if !st.success() {
            bail!("go install {SUITE_MODULE}@{SUITE_VERSION} failed ({st})");
        }
        let built = tmp.join(bin.file_name().expect("file name"));
        fs::rename(&built, &bin)
            .with_context(|| format!("moving {} to {}", built.display(), bin.display()))
    })();
    let _ = fs::remove_dir_all(&tmp);
    result?;
    eprintln!(
        "built conformance suite {SUITE_VERSION} in {:.0}s: {}",
        started.elapsed().as_secs_f64(),
        bin.display()
    );
    Ok(bin)
}

/// A running `fake-registry serve`; killed and reaped on drop (errors and panics included).
struct Registry {
    child: Child,
    url: String,
}

impl Registry {
    fn start(bin: &Path, args: &[&str], log: &Path) -> Result<Registry> {
        let log_file = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut log_out = log_file.try_clone().context("cloning log handle")?;
        eprintln!("starting {} {} …", bin.display(), args.join(" "));
        let mut child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().expect("piped stdout");
        // Guard first: from here on every exit path kills the child.
        let mut reg = Registry {
            child,
            url: String::new(),
        };

        // Read stdout on a thread: the ready line goes to us, the rest to the log, and the
        // pipe is drained for the registry's whole life.
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            let mut ready_sent = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !ready_sent && let Some(url) = ready_url(&line) {
                    ready_sent = true;
                    let _ = tx.send(url);
                    continue;
                }
                let _ = writeln!(log_out, "[stdout] {line}");
            }
        });

        match rx.recv_timeout(READY_TIMEOUT) {
            Ok(url) => {
                reg.url = url;
                Ok(reg)
            }
            Err(e) => {
                let why = match e {
                    mpsc::RecvTimeoutError::Timeout => {
                        format!("printed no ready line within {}s", READY_TIMEOUT.as_secs())
                    }
                    mpsc::RecvTimeoutError::Disconnected => {
                        // stdout closed: it exited (or closed stdout) without a ready line.
                        let st = reg.child.wait().ok();
                        format!(
                            "exited before it was ready ({})",
                            st.map_or("status unknown".into(), |s| s.to_string())
                        )
                    }
                };
                bail!("fake-registry {why}; last log lines:\n{}", tail(log, 20))
            }
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// `ready.url` of a line like `{"ready":{"url":"http://127.0.0.1:PORT",…}}`.
fn ready_url(line: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(line.trim()).ok()?;
    v.get("ready")?.get("url")?.as_str().map(String::from)
}

/// `http://127.0.0.1:PORT[/]` → `127.0.0.1:PORT` (the suite's OCI_REGISTRY, with TLS off).
fn registry_host(url: &str) -> Result<String> {
    let host = url
        .strip_prefix("http://")
        .with_context(|| format!("ready url {url:?} is not plain http://"))?;
    let host = host.trim_end_matches('/');
    if host.is_empty() || host.contains('/') {
        bail!("ready url {url:?} is not http://HOST:PORT");
    }
    Ok(host.to_string())
}

fn run_suite(
    bin: &Path,
    env: &[(String, String)],
    cwd: &Path,
    log: &Path,
    verbose: bool,
    timeout: Duration,
) -> Result<ExitStatus> {
    let mut cmd = Command::new(bin);
    cmd.current_dir(cwd).stdin(Stdio::null());
    // No stale OCI_* from the caller's environment may steer the suite.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("OCI_") {
            cmd.env_remove(&k);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    let f = File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let mut copiers = Vec::new();
    let mut child = if verbose {
        // Tee: the terminal sees the output live, the log keeps it for judging.
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let file = std::sync::Arc::new(std::sync::Mutex::new(f));
        let out: Box<dyn std::io::Read + Send> = Box::new(child.stdout.take().expect("piped"));
        let err: Box<dyn std::io::Read + Send> = Box::new(child.stderr.take().expect("piped"));
        for (src, to_stderr) in [(out, false), (err, true)] {
            let file = file.clone();
            copiers.push(std::thread::spawn(move || {
                for line in BufReader::new(src).lines().map_while(Result::ok) {
                    if to_stderr {
                        eprintln!("{line}");
                    } else {
                        println!("{line}");
                    }
                    let _ = writeln!(file.lock().expect("log lock"), "{line}");
                }
            }));
        }
        child
    } else {
        cmd.stdout(f.try_clone()?)
            .stderr(f)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?
    };
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(st) = child.try_wait().context("waiting for the suite")? {
            for c in copiers {
                let _ = c.join();
            }
            return Ok(st);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "conformance suite still running after {}s; killed",
                timeout.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn judge(
    out: &Path,
    log: &Path,
    status: ExitStatus,
    filtered: bool,
    keep_going: bool,
) -> Result<()> {
    let results_yaml = out.join("results.yaml");
    let junit_xml = out.join("junit.xml");
    let report_html = out.join("report.html");

    if !results_yaml.is_file() {
        bail!(
            "the suite wrote no results.yaml ({status}): it did not run (bad configuration?); \
             last output lines:\n{}",
            tail(log, 20)
        );
    }
    let verdicts = report::parse_results_yaml(
        &fs::read_to_string(&results_yaml)
            .with_context(|| format!("reading {}", results_yaml.display()))?,
    );
    let junit = if junit_xml.is_file() {
        report::parse_junit(
            &fs::read_to_string(&junit_xml)
                .with_context(|| format!("reading {}", junit_xml.display()))?,
        )
        .with_context(|| format!("parsing {}", junit_xml.display()))?
    } else if filtered {
        // The suite cannot write its reports for a filtered run (see parse_console).
        eprintln!("note: with --filter the suite writes no junit.xml; judging its console report");
        report::parse_console(&fs::read_to_string(log).unwrap_or_default())
    } else {
        bail!(
            "the suite wrote results.yaml but no junit.xml ({status}); last output lines:\n{}",
            tail(log, 20)
        );
    };

    let (pass, skip) = (junit.count(Outcome::Pass), junit.count(Outcome::Skip));
    let (fail, error) = (junit.count(Outcome::Fail), junit.count(Outcome::Error));

    let mut lines = 0usize;
    let failing: Vec<_> = junit.failing().collect();
    if !failing.is_empty() {
        println!("failing tests:");
        for (i, case) in failing.iter().enumerate() {
            if lines >= MAX_FAILURE_LINES {
                println!(
                    "  … and {} more failing test(s); see report.html",
                    failing.len() - i
                );
                break;
            }
            let tag = if case.outcome == Outcome::Error {
                "ERROR"
            } else {
                "FAIL"
            };
            println!("  {tag} {}", case.name);
            lines += 1;
            for l in case
                .message
                .lines()
                .filter(|l| !l.trim().is_empty())
                .take(MSG_LINES_PER_TEST)
            {
                println!("      {}", truncate(l.trim(), 320));
                lines += 1;
            }
        }
    }
    let bad = verdicts.bad();
    if !bad.is_empty() {
        let more = if bad.len() > 8 {
            format!("; … (+{})", bad.len() - 8)
        } else {
            String::new()
        };
        println!(
            "failing verdicts in results.yaml: {}{more}",
            bad[..bad.len().min(8)].join("; ")
        );
    }
    println!(
        "conformance: {} test cases; {} failures, {} errors (suite exit: {status})",
        junit.cases.len(),
        fail,
        error
    );
    // The plain closing line CI readers understand.
    println!(
        "conformance: {pass} passed, {} failed, {skip} skipped",
        fail + error
    );
    if report_html.is_file() {
        println!("report: {}", report_html.display());
    }

    let mut problems = Vec::new();
    if fail + error > 0 {
        problems.push(format!("{} failing test case(s)", fail + error));
    }
    if junit.cases.is_empty() {
        problems.push("no test cases ran".to_string());
    }
    if !bad.is_empty() && fail + error == 0 {
        problems.push(format!("{} failing verdict(s) in results.yaml", bad.len()));
    }
    if !status.success() && problems.is_empty() {
        problems.push(format!("the suite exited with {status}"));
    }
    if problems.is_empty() {
        return Ok(());
    }
    if keep_going {
        eprintln!(
            "conformance failed ({}); --keep-going: exiting 0",
            problems.join(", ")
        );
        return Ok(());
    }
    bail!("conformance failed: {}", problems.join(", "))
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let cut: String = s.chars().take(max).collect();
    format!("{cut}…")
}

/// Last `n` lines of a (log) file, indented, or a note that it cannot be read.
fn tail(path: &Path, n: usize) -> String {
    match fs::read_to_string(path) {
        Ok(s) => {
            let lines: Vec<_> = s.lines().collect();
            let from = lines.len().saturating_sub(n);
            let t: Vec<_> = lines[from..].iter().map(|l| format!("  | {l}")).collect();
            if t.is_empty() {
                format!("  ({} is empty)", path.display())
            } else {
                t.join("\n")
            }
        }
        Err(e) => format!("  (cannot read {}: {e})", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_line() {
        let l = r#"{"ready":{"listen":"127.0.0.1:40617","pid":1,"storage":"memory","url":"http://127.0.0.1:40617"}}"#;
        assert_eq!(ready_url(l).as_deref(), Some("http://127.0.0.1:40617"));
        assert_eq!(ready_url("listening…"), None);
        assert_eq!(ready_url(r#"{"ready":{}}"#), None);
        assert_eq!(registry_host("http://127.0.0.1:5/").unwrap(), "127.0.0.1:5");
        assert!(registry_host("https://127.0.0.1:5").is_err());
    }

    #[test]
    fn overrides() {
        assert_eq!(
            parse_overrides(&["OCI_LOG=debug".into()]).unwrap(),
            [("OCI_LOG".to_string(), "debug".to_string())]
        );
        assert!(parse_overrides(&["PATH=x".into()]).is_err());
        assert!(parse_overrides(&["OCI_LOG".into()]).is_err());
    }
}
