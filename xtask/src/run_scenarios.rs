//! `cargo xtask run-scenarios`: the main job. Provisions the clients that are missing, runs
//! every scenario × client cell for real (each in its own sandbox with its own fleet),
//! writes `report.json`, `junit.xml`, `matrix.md` (a summary), `matrix-full.md` and
//! `index.html` to the output directory, appends a compact entry to the history directory and
//! prints a short summary (the cells that need attention first, then the recorded known
//! failures, then a compact grid). A client that cannot run gives `not-run` cells with the
//! reason, never `pass`.
//!
//! Recorded known failures (`known-failures.toml`, see `harness::known`) turn a
//! matching `fail` into `known-failure` and a matching `pass` into `fixed`. The run exits
//! non-zero on any unrecorded `fail`, any `fixed` (the record is stale), any `error`, any
//! `not-run` (a column that could not run proves nothing), or when nothing passed — so CI is
//! the regression gate. `--allow-fail` tolerates unrecorded `fail` cells only (exploration).
//!
//! With `--baseline FILE` the exit status follows the baseline check instead: only a
//! regression (a cell that passed in the baseline now fails or errors) fails the job.
//!
//! With `--shard I/N` the run is one of N disjoint parts of the matrix (`reports::shard`:
//! balanced by the cells' durations in the history directory when it has them); its report
//! says which (`shard`), and `cargo xtask report-merge` puts the N reports back together.

use anyhow::{Context, Result, bail};
use harness::clients;
use harness::known::{self, KnownFailures};
use harness::provision::{self, Manifest};
use harness::runner::{self, ClientUnderTest};
use indicatif::{ProgressBar, ProgressStyle};
use reports::baseline::{self, BaselineOutcome};
use reports::shard::{self, Balance, CellKey, Shard};
use reports::{Cell, ClientInfo, RunReport, SCHEMA_VERSION, ScenarioInfo, Verdict, history};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The clients of the matrix when `--client` is not given.
const DEFAULT_CLIENTS: &[&str] = &[
    "crane",
    "skopeo",
    "podman",
    "buildah",
    "docker",
    "buildctl",
    "nerdctl@2.0.0",
    "nerdctl@2.0.3",
    "ctr",
    "pack",
    "jib@3.2.0",
    "jib@3.5.2",
    "regctl",
    "oras",
];

#[derive(clap::Args)]
pub struct Args {
    /// Clients to run: `name`, `name@version`, or `name=PATH` for your own build.
    /// Repeatable and comma-separated [default: crane, skopeo, podman, buildah, docker,
    /// buildctl, nerdctl@2.0.0, nerdctl@2.0.3, ctr, pack, jib@3.2.0, jib@3.5.2, regctl,
    /// oras].
    #[arg(long = "client", value_name = "NAME[@VERSION|=PATH]")]
    clients: Vec<String>,
    /// Only scenarios whose file stem matches this glob (`*` wildcards), e.g. `acr-*`.
    #[arg(long, value_name = "GLOB")]
    scenario: Option<String>,
    /// Cells run in parallel.
    #[arg(short = 'j', long, default_value_t = 2)]
    jobs: usize,
    /// Where reports are written [default: reports/out at the workspace root].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// The directory of scenario files [default: scenarios/ at the workspace root]: point it
    /// at your own scenarios.
    #[arg(long, value_name = "DIR")]
    scenarios: Option<PathBuf>,
    /// Do not install missing clients (their cells are then `not-run`).
    #[arg(long)]
    no_install: bool,
    /// Exit 0 even when cells `fail` without a record in known-failures.toml (exploring a new
    /// client). `fixed`, `error` and `not-run` cells, and a run where nothing passed, still
    /// exit non-zero.
    #[arg(long)]
    allow_fail: bool,
    /// The recorded known failures [default: known-failures.toml at the workspace root].
    #[arg(long, value_name = "FILE")]
    known_failures: Option<PathBuf>,
    /// A previous `report.json` to compare against: exit non-zero only on regressions
    /// (pass in the baseline, fail or error now). Known failures do not fail the job; fixes,
    /// lost coverage and new failures are listed. Replaces the `--allow-fail` rule.
    #[arg(long, value_name = "FILE")]
    baseline: Option<PathBuf>,
    /// Where each run's JSON report is also kept, as `<run id>.json` (run ids start with the
    /// UTC start time).
    /// [default: reports/history at the workspace root]
    #[arg(long, value_name = "DIR")]
    history: Option<PathBuf>,
    /// How many runs the history directory keeps (the oldest are removed).
    #[arg(long, value_name = "N", default_value_t = history::DEFAULT_KEEP)]
    keep_history: usize,
    /// Do not append this run to the history directory.
    #[arg(long)]
    no_history: bool,
    /// Keep the sandbox of every cell that fails or errors (config.json, build contexts,
    /// daemon logs; the scenario's test secrets included) and print where. To re-run such
    /// a cell live, with its fleet up: `cargo xtask repro SCENARIO CLIENT`.
    #[arg(long)]
    keep_failed: bool,
    /// Run only shard I of N (1-based, e.g. `2/3`): the N shards together run every cell
    /// once, balanced by the cells' durations in the history directory when it has them
    /// (every shard must read the same one). Merge the reports with `cargo xtask report-merge`.
    #[arg(long, value_name = "I/N")]
    shard: Option<Shard>,
}

pub fn run(args: Args) -> Result<()> {
    // Read the baseline before anything runs: a wrong path or a report of another schema
    // should not cost a whole matrix run to find out.
    let baseline = args
        .baseline
        .as_deref()
        .map(|path| RunReport::read(path).context("reading the --baseline report"))
        .transpose()?;
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
    let known_path = args
        .known_failures
        .clone()
        .unwrap_or_else(|| root.join(known::FILE_NAME));
    let known = KnownFailures::load(&known_path).map_err(|e| anyhow::anyhow!("{e}"))?;

    // Every argument is checked before anything is installed, built or run.
    let scenarios_dir = args
        .scenarios
        .clone()
        .unwrap_or_else(|| root.join("scenarios"));
    let rows = scenario_rows(&scenarios_dir, args.scenario.as_deref())?;
    if rows.is_empty() {
        return Err(UsageError(format!(
            "no scenario matches {:?} in {} (scenario ids are file stems, `*` is a wildcard)",
            args.scenario.as_deref().unwrap_or("*"),
            scenarios_dir.display()
        ))
        .into());
    }
    for request in &requests {
        check_request(&manifest, request)?;
    }
    let scenario_infos: Vec<ScenarioInfo> = rows
        .iter()
        .map(|(path, s)| ScenarioInfo {
            id: s.id.clone(),
            title: s.title.clone(),
            file: relative(&root, path),
            description: s.description.clone(),
            rules: s.rules.iter().map(|r| r.get_ref().clone()).collect(),
            fault_kind: s.fault_kind.clone(),
        })
        .collect();
    let scenarios: Vec<PathBuf> = rows.into_iter().map(|(path, _)| path).collect();
    let history_dir = args
        .history
        .clone()
        .unwrap_or_else(|| root.join("reports/history"));
    // The column ids do not depend on what is installed: the shard's cells are known before
    // anything is provisioned, so only the clients with cells in it are.
    let column_ids: Vec<String> = requests
        .iter()
        .map(|r| client_column(&manifest, r).id.clone())
        .collect();
    let scenario_ids: Vec<String> = scenario_infos.iter().map(|s| s.id.clone()).collect();
    let selected = cells_to_run(args.shard, &scenario_ids, &column_ids, &history_dir);

    let out = args.out.clone().unwrap_or_else(|| root.join("reports/out"));
    if out.exists() && !out.is_dir() {
        return Err(UsageError(format!(
            "--out {} is a file; give a directory for the reports",
            out.display()
        ))
        .into());
    }

    // Install what is missing first (the pinned versions), with progress.
    let to_install: Vec<String> = requests
        .iter()
        .enumerate()
        .filter(|(column, _)| selected.iter().any(|(_, c)| c == column))
        .map(|(_, r)| r)
        .filter(|r| !r.contains('=') && !is_refclient(r))
        .cloned()
        .collect();
    if !args.no_install && !to_install.is_empty() {
        // A pinned client that cannot be provisioned is an error with its cause: its column
        // would be all `not-run`, which proves nothing about it.
        crate::install_clients::run(crate::install_clients::Args::for_clients(to_install))
            .context("provisioning the clients of the matrix")?;
    }

    build_helper_binaries(&root)?;

    let mut columns = Vec::new();
    for request in &requests {
        columns.push(client_column(&manifest, request));
    }

    let started = now_rfc3339();
    // Time-based and unique per run: it names the history entry.
    let run_id = format!("{}-{}", started.replace(['-', ':'], ""), std::process::id());
    let scratch = std::env::temp_dir().join(format!("regcompat-{run_id}"));

    let cells_total = selected.len();
    let progress = Progress::new(cells_total);
    let runtime = tokio::runtime::Runtime::new().context("tokio runtime")?;
    let columns = Arc::new(columns);
    let known = Arc::new(known);
    let options = Arc::new(runner::CellOptions {
        keep_failed: args.keep_failed,
        hold: None,
    });
    let cells = runtime.block_on(async {
        let limit = Arc::new(tokio::sync::Semaphore::new(args.jobs.max(1)));
        let mut tasks = tokio::task::JoinSet::new();
        for &(row, c) in &selected {
            let (path, columns, limit, scratch, progress, known, options) = (
                scenarios[row].clone(),
                columns.clone(),
                limit.clone(),
                scratch.clone(),
                progress.clone(),
                known.clone(),
                options.clone(),
            );
            // The cell's place in the whole matrix: unique in the run, whatever the shard.
            let i = row * columns.len() + c;
            tasks.spawn(async move {
                let _permit = limit.acquire().await;
                let client = &columns[c];
                progress.started(&format!("{} × {}", runner::stem(&path), client.id));
                let cell = runner::run_cell_with(&path, client, i, &scratch, &options).await;
                let recorded = known
                    .find(&client.driver_name, &client.version, &cell)
                    .is_some();
                progress.finished(&cell, recorded);
                (i, cell)
            });
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
    progress.finish();

    let mut report = RunReport {
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
        shard: args.shard,
    };
    let unused = known.apply(&mut report);
    let written = reports::write_all(&report, &out)?;
    // Evidence files the cells kept (redacted daemon logs), beside the report; the HTML
    // page links them by these relative paths.
    let _ = std::fs::remove_dir_all(out.join("artifacts"));
    copy_tree(&scratch.join("artifacts"), &out.join("artifacts"))?;
    let kept = kept_sandboxes(&report, &scratch);
    if kept.is_empty() {
        let _ = std::fs::remove_dir_all(&scratch);
    }
    print!("{}", reports::summary::render_text(&report));
    if let Some(c) = report
        .cells
        .iter()
        .find(|c| matches!(c.verdict, Verdict::Fail | Verdict::Error))
    {
        println!(
            "\nTo replay a failing cell live (its fleet up, the failing command printed): \
             cargo xtask repro {} {}",
            c.scenario, c.client
        );
    }
    println!(
        "\nreports: {}, {}, {}, {}, {}",
        written.html.display(),
        written.markdown.display(),
        written.markdown_full.display(),
        written.junit.display(),
        written.json.display()
    );
    if !args.no_history {
        // The reports are written; a history problem is reported but does not hide them.
        match history::append_keeping(&report, &history_dir, args.keep_history) {
            Ok(path) => println!("history: {}", path.display()),
            Err(e) => eprintln!("warning: the run was not added to the history: {e}"),
        }
    }
    print_stale_records(&report, &known, &unused);
    if !kept.is_empty() {
        println!(
            "\nKept sandboxes of {} failing cell(s) (the repro lines in report.json run there; \
             they hold the scenarios' test credentials — delete {} when done):",
            kept.len(),
            scratch.display()
        );
        for (cell, dir) in &kept {
            println!(
                "  {} × {}: {}\n    live, with its fleet: cargo xtask repro {} {}",
                cell.scenario,
                cell.client,
                dir.display(),
                cell.scenario,
                cell.client
            );
        }
    }
    // A shard is checked against the baseline's cells of this shard: the others are not
    // lost coverage.
    let baseline = baseline.map(|b| of_shard(b, &report));
    let outcome = baseline.as_ref().map(|b| baseline::check(&report, b));
    if let Some(outcome) = &outcome {
        println!("\n{}", baseline::render_markdown(outcome));
    }
    exit_decision(&report, outcome.as_ref(), args.allow_fail).map_err(anyhow::Error::msg)
}

/// The known-failure records that covered no cell that ran (stale, or of a column not in
/// this run). The run's known failures themselves are in the summary, with their links.
fn print_stale_records(report: &RunReport, known: &KnownFailures, unused: &[&known::Record]) {
    // A record that covers cells of this run none of which passed or failed (the client
    // could not run, or the scenario became not-applicable) may be stale: say so. Records
    // for columns or scenarios outside this run are not mentioned.
    for r in unused {
        let covers_a_cell = report.cells.iter().any(|cell| {
            report
                .clients
                .iter()
                .find(|c| c.id == cell.client)
                .is_some_and(|c| r.covers_cell(&c.name, &c.version, cell))
        });
        if covers_a_cell {
            println!(
                "note: {}: the record for {} {} × {} covers cells of this run that neither \
                 passed nor failed (stale?)",
                known.file,
                r.client.get_ref(),
                r.versions.get_ref(),
                r.scenario.get_ref()
            );
        }
    }
}

/// Whether the run fails the job, and why.
///
/// Always: a run where nothing passed proves nothing. With a baseline: only regressions
/// fail. Without: any `error`, `fixed` (a stale known-failure record) or `not-run` cell
/// fails, and any unrecorded `fail` unless `allow_fail`.
pub(crate) fn exit_decision(
    report: &RunReport,
    baseline: Option<&BaselineOutcome>,
    allow_fail: bool,
) -> std::result::Result<(), String> {
    let totals = report.totals();
    let count = |v: Verdict| totals.get(&v).copied().unwrap_or(0);
    // A shard may hold only cells that cannot pass (not-applicable, known failures) or none
    // at all: "nothing passed" is a rule for the whole matrix.
    if report.shard.is_none() && count(Verdict::Pass) + count(Verdict::Fixed) == 0 {
        return Err("no cell passed: the matrix proves nothing".into());
    }
    if let Some(outcome) = baseline {
        if !outcome.passed() {
            return Err(format!(
                "{} cell(s) regressed against the baseline (see above)",
                outcome.regressions.len()
            ));
        }
        return Ok(());
    }
    let mut problems = Vec::new();
    if count(Verdict::Error) > 0 {
        problems.push(format!(
            "{} cell(s) where the harness failed (`error`)",
            count(Verdict::Error)
        ));
    }
    if count(Verdict::Fixed) > 0 {
        problems.push(format!(
            "{} cell(s) recorded as known failures now pass (`fixed`: update {})",
            count(Verdict::Fixed),
            known::FILE_NAME
        ));
    }
    if count(Verdict::NotRun) > 0 {
        problems.push(format!(
            "{} cell(s) could not run (`not-run`: a client is missing or failed to start)",
            count(Verdict::NotRun)
        ));
    }
    if count(Verdict::Fail) > 0 && !allow_fail {
        problems.push(format!(
            "{} unrecorded failure(s) (`fail`: a client regressed, or a new finding to record \
             in {} with its upstream link)",
            count(Verdict::Fail),
            known::FILE_NAME
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("the matrix is not clean: {}", problems.join("; ")))
    }
}

/// The (row, column) positions of the cells this run runs, row by row: every cell of the
/// matrix, or with `--shard` the shard's (`reports::shard::assign`, balanced by the
/// durations recorded in `history_dir` when it has any).
fn cells_to_run(
    shard: Option<Shard>,
    scenario_ids: &[String],
    column_ids: &[String],
    history_dir: &Path,
) -> Vec<(usize, usize)> {
    let all: Vec<(usize, usize)> = (0..scenario_ids.len())
        .flat_map(|row| (0..column_ids.len()).map(move |column| (row, column)))
        .collect();
    let Some(shard) = shard else {
        return all;
    };
    let keys: Vec<CellKey> = all
        .iter()
        .map(|(row, column)| CellKey::new(&scenario_ids[*row], &column_ids[*column]))
        .collect();
    let durations = shard::recorded_durations(history_dir).unwrap_or_else(|e| {
        // Every shard must assign alike; `report-merge` refuses shards that did not.
        eprintln!("warning: shard {shard}: durations unreadable, balancing by order instead: {e}");
        Default::default()
    });
    let assignment = shard::assign(&keys, shard.count, &durations);
    let positions = assignment.cells_of(shard.index);
    let basis = match assignment.balance {
        Balance::Durations { recorded } => format!(
            "balanced by the durations in {} ({recorded} of {} cells recorded)",
            history_dir.display(),
            keys.len()
        ),
        Balance::Order => format!(
            "balanced by order (no durations recorded in {})",
            history_dir.display()
        ),
    };
    eprintln!(
        "shard {shard}: {} of {} cells, {basis}",
        positions.len(),
        keys.len()
    );
    positions.into_iter().map(|p| all[p]).collect()
}

/// The baseline's cells of `report`'s shard (all of them for a whole run).
fn of_shard(mut baseline: RunReport, report: &RunReport) -> RunReport {
    if report.shard.is_some() {
        baseline
            .cells
            .retain(|b| report.cell(&b.scenario, &b.client).is_some());
    }
    baseline
}

/// A mistake in the command line: answered before any work, with exit status 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Checks one `--client` request: `name=PATH` names an existing file and a client with a
/// driver; `name[@version]` names a client with a driver and a version `clients.toml` pins.
pub(crate) fn check_request(manifest: &Manifest, request: &str) -> Result<()> {
    if is_refclient(request) {
        let name = request.split('=').next().unwrap_or(request);
        let mutant = name.split_once('@').map_or("correct", |(_, m)| m);
        return mutant
            .parse::<refclient::Mutant>()
            .map(|_| ())
            .map_err(|e| UsageError(format!("--client {request}: {e}")).into());
    }
    let (name, path) = match request.split_once('=') {
        Some((n, p)) => (n, Some(Path::new(p))),
        None => (request.split('@').next().unwrap_or(request), None),
    };
    let canonical = manifest.client(name).map_or(name, |c| c.name.as_str());
    if clients::by_name(canonical).is_none() {
        let known: Vec<&str> = clients::all().iter().map(|d| d.name()).collect();
        return Err(UsageError(format!(
            "--client {request}: no driver for {name:?} (clients with a driver: {})",
            known.join(", ")
        ))
        .into());
    }
    match path {
        Some(p) if !p.is_file() => Err(UsageError(format!(
            "--client {request}: {} is not a file (give the path of your build of {name})",
            p.display()
        ))
        .into()),
        Some(_) => Ok(()),
        None => manifest.resolve(request).map(|_| ()).map_err(|e| {
            UsageError(format!(
                "--client {request}: {e} (pinned versions are in clients.toml)"
            ))
            .into()
        }),
    }
}

/// One column of the matrix (a client at a version, or a maintainer's own binary).
pub(crate) struct Column {
    pub(crate) driver_name: String,
    pub(crate) version: String,
    source: String,
    cut: ClientUnderTest,
}

impl std::ops::Deref for Column {
    type Target = ClientUnderTest;
    fn deref(&self) -> &ClientUnderTest {
        &self.cut
    }
}

pub(crate) fn client_column(manifest: &Manifest, request: &str) -> Column {
    if let Some(column) = refclient_column(request) {
        return column;
    }
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

/// Whether a client request names regcompat's reference client (built, never installed).
fn is_refclient(request: &str) -> bool {
    request.split(['@', '=']).next() == Some("refclient")
}

/// regcompat's reference client: `refclient[@MUTANT][=PATH]`, the mutant named by the
/// version (default `correct`), the binary built beside docker-credential-regcompat unless
/// a path is given.
fn refclient_column(request: &str) -> Option<Column> {
    let (name, path) = match request.split_once('=') {
        Some((n, p)) => (n, Some(PathBuf::from(p))),
        None => (request, None),
    };
    let (name, mutant) = name.split_once('@').unwrap_or((name, "correct"));
    if !is_refclient(name) {
        return None;
    }
    let source = if path.is_some() { "path" } else { "build" };
    let path = path.or_else(|| {
        std::env::var_os(runner::CREDHELPER_BIN_ENV)
            .map(PathBuf::from)
            .and_then(|p| p.parent().map(|d| d.join("regcompat-refclient")))
    });
    let binary = match path {
        Some(p) if p.is_file() => Ok(p),
        Some(p) => Err(format!("{} does not exist", p.display())),
        None => Err("regcompat-refclient was not built".into()),
    };
    let binary = match mutant.parse::<refclient::Mutant>() {
        Ok(_) => binary,
        Err(e) => Err(e.to_string()),
    };
    Some(Column {
        driver_name: name.to_owned(),
        version: mutant.to_owned(),
        source: source.into(),
        cut: ClientUnderTest {
            id: format!("refclient@{mutant}"),
            driver: Box::new(clients::refclient::RefClient::new(mutant)),
            binary,
            tools: Vec::new(),
        },
    })
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
pub(crate) fn copy_tree(from: &Path, to: &Path) -> Result<()> {
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

/// The matrix's rows: the scenario files of `dir` whose stem matches `glob`, loaded (one
/// that does not load is a usage error naming its line). A variant (`variant_of`) is no row
/// of its own: the runner runs it on its base's row for the clients that cannot express the
/// base, so a glob that matches a variant selects its base's row.
fn scenario_rows(
    dir: &Path,
    glob: Option<&str>,
) -> Result<Vec<(PathBuf, harness::scenario::Scenario)>> {
    let load = |path: &Path| {
        harness::scenario::Scenario::load(path).map_err(|e| UsageError(e.to_string()))
    };
    let mut rows = std::collections::BTreeMap::new();
    for path in scenario_files(dir, glob)? {
        let scenario = load(&path)?;
        match &scenario.variant_of {
            Some(base) => {
                let base = dir.join(format!("{}.toml", base.get_ref()));
                if let std::collections::btree_map::Entry::Vacant(row) = rows.entry(base) {
                    let scenario = load(row.key())?;
                    row.insert(scenario);
                }
            }
            None => {
                rows.insert(path, scenario);
            }
        }
    }
    Ok(rows.into_iter().collect())
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

/// The workspace this xtask was built from: scenarios, known failures and reports live
/// there, wherever `$REGCOMPAT_CLIENTS_MANIFEST` points the client manifest.
pub(crate) fn workspace_root() -> PathBuf {
    let xtask_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    xtask_dir.parent().unwrap_or(xtask_dir).to_path_buf()
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

/// The sandboxes `--keep-failed` kept: cells that failed or errored (recorded known failures
/// included) whose directory is still there.
fn kept_sandboxes<'a>(report: &'a RunReport, scratch: &Path) -> Vec<(&'a Cell, PathBuf)> {
    report
        .cells
        .iter()
        .filter(|c| {
            matches!(
                c.verdict,
                Verdict::Fail | Verdict::Error | Verdict::KnownFailure
            )
        })
        .map(|c| (c, runner::sandbox_dir(scratch, &c.scenario, &c.client)))
        .filter(|(_, dir)| dir.is_dir())
        .collect()
}

/// The matrix's progress: a bar on a terminal; in a log (CI, a pipe) one line per finished
/// cell, so a long run is never silent and a log shows what ran when.
#[derive(Clone)]
enum Progress {
    Bar(ProgressBar),
    Lines {
        total: usize,
        done: Arc<std::sync::atomic::AtomicUsize>,
    },
}

impl Progress {
    fn new(total: usize) -> Self {
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template("{bar:30} {pos}/{len} cells  {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            Progress::Bar(bar)
        } else {
            eprintln!("running {total} cells");
            Progress::Lines {
                total,
                done: Arc::default(),
            }
        }
    }

    fn started(&self, label: &str) {
        if let Progress::Bar(bar) = self {
            bar.set_message(label.to_owned());
        }
    }

    /// `recorded`: a known-failure record covers the cell (a `fail` is then shown as such).
    fn finished(&self, cell: &Cell, recorded: bool) {
        match self {
            Progress::Bar(bar) => bar.inc(1),
            Progress::Lines { total, done } => {
                let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                let verdict = match cell.verdict {
                    Verdict::Fail if recorded => "known-failure".to_owned(),
                    Verdict::Pass if recorded => "fixed".to_owned(),
                    v => v.to_string(),
                };
                eprintln!(
                    "[{n:>w$}/{total}] {verdict:<14} {} × {} ({:.1} s)",
                    cell.scenario,
                    cell.client,
                    cell.duration_ms as f64 / 1000.0,
                    w = total.to_string().len()
                );
            }
        }
    }

    fn finish(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

/// Builds the harness's own binaries the cells run — `docker-credential-regcompat` and
/// `regcompat-refclient` — and names them for the runner ([`runner::CREDHELPER_BIN_ENV`]).
pub(crate) fn build_helper_binaries(root: &Path) -> Result<()> {
    // The inner cargo gets the environment of a plain shell, not the variables cargo sets
    // for the `cargo run` that started xtask: build scripts fingerprint those (ring's reads
    // CARGO_MANIFEST_DIR), so inheriting them rebuilt half the workspace here and back again
    // on the next `cargo xtask …`. The user's own settings (CARGO_INCREMENTAL,
    // CARGO_TARGET_DIR, CARGO_BUILD_JOBS …) stay.
    let mut build =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if set_by_cargo_run(&key) {
            build.env_remove(key.as_ref());
        }
    }
    let status = build
        .args([
            "build",
            "-p",
            "harness",
            "--bin",
            "docker-credential-regcompat",
            "--bin",
            "regcompat-refclient",
        ])
        .current_dir(root)
        .status()
        .context("building docker-credential-regcompat and regcompat-refclient")?;
    if !status.success() {
        bail!("building docker-credential-regcompat and regcompat-refclient failed");
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
    Ok(())
}

/// The variables cargo sets for the program of a `cargo run` (the Cargo book's "Environment
/// variables Cargo sets for crates"), as opposed to the ones a user sets to configure cargo.
fn set_by_cargo_run(key: &str) -> bool {
    key.starts_with("CARGO_PKG_")
        || matches!(
            key,
            "CARGO_MANIFEST_DIR"
                | "CARGO_MANIFEST_PATH"
                | "CARGO_MANIFEST_LINKS"
                | "CARGO_CRATE_NAME"
                | "CARGO_BIN_NAME"
                | "CARGO_PRIMARY_PACKAGE"
                | "CARGO_RUSTC_CURRENT_DIR"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inner_build_keeps_the_users_cargo_settings() {
        for ours in ["CARGO_MANIFEST_DIR", "CARGO_PKG_VERSION", "CARGO_BIN_NAME"] {
            assert!(set_by_cargo_run(ours), "{ours}");
        }
        for users in [
            "CARGO_INCREMENTAL",
            "CARGO_TARGET_DIR",
            "CARGO_HOME",
            "CARGO_BUILD_JOBS",
        ] {
            assert!(!set_by_cargo_run(users), "{users}");
        }
    }

    fn report(verdicts: &[Verdict]) -> RunReport {
        RunReport {
            schema: SCHEMA_VERSION.into(),
            run_id: "r".into(),
            started: String::new(),
            finished: String::new(),
            regcompat_version: String::new(),
            clients: vec![],
            scenarios: vec![],
            cells: verdicts
                .iter()
                .enumerate()
                .map(|(i, v)| Cell::without_evidence(format!("s{i}"), "crane@1", *v, ""))
                .collect(),
            shard: None,
        }
    }

    use Verdict::{Error, Fail, Fixed, KnownFailure, NotApplicable, NotRun, Pass};

    /// A family's variant is no row: the matrix lists its base, and a glob that matches the
    /// variant selects the base's row.
    #[test]
    fn a_variant_is_no_row_and_selecting_it_selects_its_base() {
        let dir = std::env::temp_dir().join(format!("regcompat-rows-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let write = |name: &str, extra: &str, step: &str| {
            std::fs::write(
                dir.join(format!("{name}.toml")),
                format!(
                    "title = \"{name}\"\nrules = [\"spec-conformance\"]\n{extra}[[host]]\n\
                     name = \"reg\"\nhostname = \"registry.example.com\"\n[host.profile]\n\
                     kind = \"open\"\n[[step]]\n{step}expect = \"success\"\n"
                ),
            )
            .unwrap();
        };
        let pull = "action = \"pull\"\nimage = \"{reg}/a:1\"\n";
        write("fam", "", pull);
        write(
            "fam-builder-create",
            "variant_of = \"fam\"\n",
            "action = \"builder-create\"\nimage = \"{reg}/a:1\"\nrun_image = \"{reg}/a:1\"\n\
             to = \"{reg}/b:1\"\n",
        );
        write("other", "", pull);
        let rows = |glob: Option<&str>| -> Vec<String> {
            scenario_rows(&dir, glob)
                .unwrap()
                .into_iter()
                .map(|(path, s)| {
                    assert_eq!(runner::stem(&path), s.id);
                    s.id
                })
                .collect()
        };
        assert_eq!(rows(None), ["fam", "other"]);
        assert_eq!(rows(Some("fam-builder-create")), ["fam"]);
        assert_eq!(rows(Some("*-builder-create")), ["fam"]);
        assert_eq!(rows(Some("f*")), ["fam"]);
        assert_eq!(rows(Some("other")), ["other"]);
        assert!(rows(Some("nothing")).is_empty());
        // The repository's pack twins of the fault scenarios are variants, not rows.
        let repository = scenario_rows(&workspace_root().join("scenarios"), Some("fault-*"))
            .unwrap()
            .into_iter()
            .map(|(_, s)| s.id)
            .collect::<Vec<_>>();
        assert!(
            repository.iter().all(|id| !id.ends_with("-builder-create")),
            "{repository:?}"
        );
        assert!(
            repository.iter().any(|id| id == "fault-503-blob"),
            "{repository:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn without_a_baseline_only_pass_known_failure_and_not_applicable_are_clean() {
        assert!(exit_decision(&report(&[Pass, KnownFailure, NotApplicable]), None, false).is_ok());
        for (verdicts, needle) in [
            (&[Pass, Fail][..], "unrecorded failure"),
            (&[Pass, Fixed], "update known-failures.toml"),
            (&[Pass, NotRun], "could not run"),
            (&[Pass, Error], "harness failed"),
        ] {
            let e = exit_decision(&report(verdicts), None, false).unwrap_err();
            assert!(e.contains(needle), "{verdicts:?}: {e}");
        }
        // --allow-fail tolerates unrecorded failures only.
        assert!(exit_decision(&report(&[Pass, Fail]), None, true).is_ok());
        assert!(exit_decision(&report(&[Pass, Fixed]), None, true).is_err());
        assert!(exit_decision(&report(&[Pass, NotRun]), None, true).is_err());
        assert!(exit_decision(&report(&[Pass, Error]), None, true).is_err());
        let nothing =
            exit_decision(&report(&[NotApplicable, KnownFailure]), None, true).unwrap_err();
        assert!(nothing.contains("no cell passed"), "{nothing}");
    }

    #[test]
    fn a_shard_need_not_pass_anything_but_is_otherwise_judged_alike() {
        let shard = |verdicts: &[Verdict]| RunReport {
            shard: Some(Shard { index: 2, count: 3 }),
            ..report(verdicts)
        };
        assert!(exit_decision(&shard(&[]), None, false).is_ok());
        assert!(exit_decision(&shard(&[NotApplicable, KnownFailure]), None, false).is_ok());
        for verdicts in [&[Fail][..], &[NotRun], &[Error], &[Fixed]] {
            assert!(
                exit_decision(&shard(verdicts), None, false).is_err(),
                "{verdicts:?}"
            );
        }
        assert!(exit_decision(&report(&[NotApplicable]), None, false).is_err());
    }

    #[test]
    fn the_shards_run_every_cell_once_and_only_their_clients_cells() {
        let history = tempfile::tempdir().unwrap();
        let scenarios: Vec<String> = (0..5).map(|i| format!("s{i}")).collect();
        let columns: Vec<String> = vec!["crane@1".into(), "oras@2".into(), "regctl@3".into()];
        let all = cells_to_run(None, &scenarios, &columns, history.path());
        assert_eq!(all.len(), 15);
        // Without history, then with one (durations recorded for some cells).
        for round in 0..2 {
            let mut seen = Vec::new();
            for index in 1..=4 {
                let shard = Some(Shard { index, count: 4 });
                seen.extend(cells_to_run(shard, &scenarios, &columns, history.path()));
            }
            seen.sort();
            assert_eq!(seen, all, "round {round}");
            let mut recorded = report(&[Pass, Pass, Pass]);
            for (i, cell) in recorded.cells.iter_mut().enumerate() {
                cell.duration_ms = 1000 * (i as u64 + 1);
            }
            history::append(&recorded, history.path()).unwrap();
        }
        let mut one = cells_to_run(
            Some(Shard { index: 1, count: 1 }),
            &scenarios,
            &columns,
            history.path(),
        );
        one.sort();
        assert_eq!(one, all);
    }

    #[test]
    fn with_a_baseline_only_regressions_fail() {
        let base = report(&[Pass, Fail, Error, Pass]);
        // Known failures (fail, error) stay: fine, even without --allow-fail.
        let same = report(&[Pass, Fail, Error, Pass]);
        let outcome = baseline::check(&same, &base);
        assert!(exit_decision(&same, Some(&outcome), false).is_ok());
        // Fixed and lost coverage: fine.
        let better = report(&[Pass, Pass, Error, NotRun]);
        let outcome = baseline::check(&better, &base);
        assert!(exit_decision(&better, Some(&outcome), false).is_ok());
        // pass -> fail and pass -> error: regressions, even with --allow-fail.
        for now in [
            report(&[Fail, Fail, Error, Pass]),
            report(&[Pass, Fail, Error, Error]),
        ] {
            let outcome = baseline::check(&now, &base);
            let message = exit_decision(&now, Some(&outcome), true).unwrap_err();
            assert!(message.starts_with("1 cell(s) regressed"), "{message}");
        }
        // Nothing passing still fails, baseline or not.
        let dead = report(&[NotRun, Fail, Error, NotRun]);
        let outcome = baseline::check(&dead, &base);
        assert!(exit_decision(&dead, Some(&outcome), false).is_err());
    }
}
