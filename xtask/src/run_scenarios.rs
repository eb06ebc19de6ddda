//! `cargo xtask run-scenarios`: the main job. Provisions the clients that are missing, runs
//! every scenario × client cell for real (each in its own sandbox with its own fleet),
//! writes `report.json` and `matrix.md` to the output directory and prints the matrix.
//! A client that cannot run gives `not-run` cells with the reason, never `pass`.

use anyhow::{Context, Result, bail};
use harness::clients;
use harness::provision::{self, Manifest};
use harness::runner::{self, ClientUnderTest};
use indicatif::{ProgressBar, ProgressStyle};
use reports::{ClientInfo, RunReport, SCHEMA_VERSION, ScenarioInfo};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The clients of the matrix when `--client` is not given.
const DEFAULT_CLIENTS: &[&str] = &["crane", "skopeo", "docker"];

#[derive(clap::Args)]
pub struct Args {
    /// Clients to run: `name`, `name@version`, or `name=PATH` for your own build.
    /// Repeatable and comma-separated [default: crane, skopeo, docker].
    #[arg(long = "client", value_name = "NAME[@VERSION|=PATH]")]
    clients: Vec<String>,
    /// Only scenarios whose file stem matches this glob (`*` wildcards), e.g. `acr-*`.
    #[arg(long, value_name = "GLOB")]
    scenario: Option<String>,
    /// Cells run in parallel.
    #[arg(short = 'j', long, default_value_t = 2)]
    jobs: usize,
    /// Where reports are written.
    #[arg(long, value_name = "DIR", default_value = "reports/out")]
    out: PathBuf,
    /// Do not install missing clients (their cells are then `not-run`).
    #[arg(long)]
    no_install: bool,
    /// Exit 0 even when cells `fail` (a client behaving wrongly is a finding of the report,
    /// not a broken harness). Harness `error` cells, and a run where nothing passed, still
    /// exit non-zero.
    #[arg(long)]
    allow_fail: bool,
}

pub fn run(args: Args) -> Result<()> {
    let root = workspace_root();
    let requests: Vec<String> = if args.clients.is_empty() {
        DEFAULT_CLIENTS.iter().map(|c| (*c).to_owned()).collect()
    } else {
        args.clients
            .iter()
            .flat_map(|c| c.split(','))
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect()
    };
    let manifest =
        Manifest::load(provision::default_manifest_path()).map_err(|e| anyhow::anyhow!("{e}"))?;

    // Install what is missing first (the pinned versions), with progress.
    let to_install: Vec<String> = requests
        .iter()
        .filter(|r| !r.contains('='))
        .cloned()
        .collect();
    if !args.no_install
        && !to_install.is_empty()
        && let Err(e) =
            crate::install_clients::run(crate::install_clients::Args::for_clients(to_install))
    {
        eprintln!("warning: provisioning failed ({e:#}); those clients' cells are not-run");
    }

    // The harness's credential helper is a binary of its own: build it and tell the runner.
    let status =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args([
                "build",
                "--quiet",
                "-p",
                "harness",
                "--bin",
                "docker-credential-regcompat",
            ])
            .current_dir(&root)
            .status()
            .context("building docker-credential-regcompat")?;
    if !status.success() {
        bail!("building docker-credential-regcompat failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    // SAFETY: set once, before any thread of the runtime exists.
    unsafe {
        std::env::set_var(
            runner::CREDHELPER_BIN_ENV,
            target.join("debug/docker-credential-regcompat"),
        );
    }

    let mut columns = Vec::new();
    for request in &requests {
        columns.push(client_column(&manifest, request));
    }

    let scenarios = scenario_files(&root.join("scenarios"), args.scenario.as_deref())?;
    if scenarios.is_empty() {
        bail!(
            "no scenario matches (looked in {})",
            root.join("scenarios").display()
        );
    }
    let started = now_rfc3339();
    let run_id = format!("run-{}", std::process::id());
    let scratch = std::env::temp_dir().join(format!("regcompat-{run_id}"));

    let mut scenario_infos = Vec::new();
    for path in &scenarios {
        match harness::scenario::Scenario::load(path) {
            Ok(s) => scenario_infos.push(ScenarioInfo {
                id: s.id.clone(),
                title: s.title.clone(),
                file: relative(&root, path),
                description: s.description.clone(),
            }),
            Err(e) => bail!("{e}"),
        }
    }

    let cells_total = scenarios.len() * columns.len();
    let bar = ProgressBar::new(cells_total as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} cells  {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let runtime = tokio::runtime::Runtime::new().context("tokio runtime")?;
    let columns = Arc::new(columns);
    let cells = runtime.block_on(async {
        let limit = Arc::new(tokio::sync::Semaphore::new(args.jobs.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        let mut index = 0usize;
        for path in &scenarios {
            for c in 0..columns.len() {
                let (path, columns, limit, scratch, bar) = (
                    path.clone(),
                    columns.clone(),
                    limit.clone(),
                    scratch.clone(),
                    bar.clone(),
                );
                let i = index;
                index += 1;
                tasks.spawn(async move {
                    let _permit = limit.acquire().await;
                    let client = &columns[c];
                    bar.set_message(format!("{} × {}", runner::stem(&path), client.id));
                    let cell = runner::run_cell(&path, client, i, &scratch).await;
                    bar.inc(1);
                    (i, cell)
                });
            }
        }
        let mut out = Vec::new();
        while let Some(r) = tasks.join_next().await {
            if let Ok(x) = r {
                out.push(x);
            }
        }
        out.sort_by_key(|(i, _)| *i);
        out.into_iter().map(|(_, c)| c).collect::<Vec<_>>()
    });
    bar.finish_and_clear();

    let report = RunReport {
        schema: SCHEMA_VERSION.into(),
        run_id,
        started,
        finished: now_rfc3339(),
        regcompat_version: env!("CARGO_PKG_VERSION").into(),
        clients: columns
            .iter()
            .map(|c| ClientInfo {
                id: c.id.clone(),
                name: c.driver_name.clone(),
                version: c.version.clone(),
                source: c.source.clone(),
                path: c.cut.binary.as_ref().ok().map(|p| p.display().to_string()),
                unavailable: c.cut.binary.as_ref().err().cloned(),
            })
            .collect(),
        scenarios: scenario_infos,
        cells,
    };
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    // Evidence files the cells kept (redacted daemon logs), beside the report.
    let _ = std::fs::remove_dir_all(args.out.join("artifacts"));
    copy_tree(&scratch.join("artifacts"), &args.out.join("artifacts"))?;
    let _ = std::fs::remove_dir_all(&scratch);
    let json = args.out.join("report.json");
    std::fs::write(&json, serde_json::to_string_pretty(&report)?)?;
    let md = args.out.join("matrix.md");
    let matrix = reports::markdown::render(&report);
    std::fs::write(&md, &matrix)?;
    let junit = args.out.join("junit.xml");
    std::fs::write(&junit, reports::junit::render(&report))?;
    println!("{matrix}");
    println!(
        "reports: {}, {}, {}",
        json.display(),
        md.display(),
        junit.display()
    );
    let totals = report.totals();
    let count = |v: reports::Verdict| totals.get(&v).copied().unwrap_or(0);
    if count(reports::Verdict::Error) > 0 {
        bail!("the harness failed in some cells (verdict `error`, see above)");
    }
    if count(reports::Verdict::Pass) == 0 {
        bail!("no cell passed: the matrix proves nothing");
    }
    if count(reports::Verdict::Fail) > 0 && !args.allow_fail {
        bail!("some cells failed (see the matrix above; --allow-fail to report without failing)");
    }
    Ok(())
}

/// One column of the matrix (a client at a version, or a maintainer's own binary).
struct Column {
    driver_name: String,
    version: String,
    source: String,
    cut: ClientUnderTest,
}

impl std::ops::Deref for Column {
    type Target = ClientUnderTest;
    fn deref(&self) -> &ClientUnderTest {
        &self.cut
    }
}

fn client_column(manifest: &Manifest, request: &str) -> Column {
    let (name, path) = match request.split_once('=') {
        Some((n, p)) => (n.to_owned(), Some(PathBuf::from(p))),
        None => (
            request.split('@').next().unwrap_or(request).to_owned(),
            None,
        ),
    };
    // `buildctl` → `buildkit`, `ctr` → `containerd`: drivers go by the manifest's names.
    let name = manifest.client(&name).map_or(name, |c| c.name.clone());
    let tools = required_tool_dirs(manifest, &name);
    let Some(driver) = clients::by_name(&name) else {
        let reason = format!("no driver for {name} yet: its cells are not run");
        return Column {
            driver_name: name,
            version: String::new(),
            source: "none".into(),
            cut: ClientUnderTest {
                id: request.to_owned(),
                driver: Box::new(NoDriver),
                binary: Err(reason),
                tools,
            },
        };
    };
    if let Some(path) = path {
        let binary = if path.is_file() {
            Ok(path.clone())
        } else {
            Err(format!("{} does not exist", path.display()))
        };
        return Column {
            driver_name: name.clone(),
            version: "dev".into(),
            source: "path".into(),
            cut: ClientUnderTest {
                id: format!("{name}@dev"),
                driver,
                binary,
                tools,
            },
        };
    }
    let (id, version, binary) = match manifest.resolve(request) {
        Ok(spec) => {
            let id = format!("{}@{}", spec.name, spec.version);
            let binary = match provision::installed(&spec) {
                Some(installed) => installed
                    .binary(driver.binary())
                    .map(Path::to_path_buf)
                    .ok_or_else(|| format!("{id} is installed without {}", driver.binary())),
                None => Err(format!(
                    "{id} is not installed (cargo xtask install-clients {id})"
                )),
            };
            (id, spec.version, binary)
        }
        Err(e) => (request.to_owned(), String::new(), Err(e.to_string())),
    };
    Column {
        driver_name: name,
        version,
        source: "cache".into(),
        cut: ClientUnderTest {
            id,
            driver,
            binary,
            tools,
        },
    }
}

/// The installed binary directories of what `name` requires (transitively, default
/// versions): buildkitd and containerd for nerdctl, runc for buildkitd… A requirement that
/// is not installed is left out; the daemon that needs it fails to start and says so.
fn required_tool_dirs(manifest: &Manifest, name: &str) -> Vec<PathBuf> {
    let Ok(specs) = manifest.resolve_all(&[name], true) else {
        return Vec::new();
    };
    specs
        .iter()
        .filter(|s| s.name != name)
        .filter_map(provision::installed)
        .map(|i| i.bin_dir)
        .collect()
}

/// Copies a directory tree (evidence files: small, regular files only).
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(from) else {
        return Ok(());
    };
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in entries.flatten() {
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if src.is_dir() {
            copy_tree(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst)
                .with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
        }
    }
    Ok(())
}

/// Stands in for a client without a driver; never runs (its binary is an error).
struct NoDriver;

impl clients::Driver for NoDriver {
    fn name(&self) -> &'static str {
        "none"
    }
    fn binary(&self) -> &'static str {
        "none"
    }
    fn supports(&self, _action: harness::scenario::Action) -> bool {
        false
    }
    fn commands(
        &self,
        _cell: &clients::CellEnv,
        _action: &clients::ResolvedAction,
    ) -> Vec<Vec<String>> {
        Vec::new()
    }
}

fn scenario_files(dir: &Path, glob: Option<&str>) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .filter(|p| glob.is_none_or(|g| harness::scenario::glob(g, &runner::stem(p))))
        .collect();
    files.sort();
    Ok(files)
}

fn workspace_root() -> PathBuf {
    provision::default_manifest_path()
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn relative(root: &Path, p: &Path) -> String {
    p.strip_prefix(root).unwrap_or(p).display().to_string()
}

fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    fake_registry::profile::bearer::humantime_rfc3339(secs)
}
