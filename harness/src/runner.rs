//! The matrix: scenarios × clients, each cell in its own sandbox with its own fleet, run
//! `jobs` at a time, with a progress bar. Produces the `reports` result model.
//!
//! A cell: sandbox → fleet (in-process, on loopback) → hosts file + trust → client config
//! → daemons → steps (each a process group with a timeout) → journal → checks → verdict.
//! Whatever happens, the cell's daemons are stopped and its fleet shut down before the
//! next cell starts on that worker; after the run no process carrying the run's marker
//! may remain (checked, and killed if any did).

use crate::client_config;
use crate::clients::{self, Binaries, CellEnv, Driver, Invocation, ResolvedStep};
use crate::credhelper;
use crate::image_source;
use crate::process::{self, Isolation, Spec};
use crate::sandbox::{RUN_ID_VAR, Sandbox};
use crate::scenario::{self, Outcome, Scenario};
use crate::verdict;
use fake_registry::auth::Clock;
use fake_registry::fleet::{Fleet, FleetOptions, RunningFleet};
use reports::{Cell, ClientInfo, RunReport, SCHEMA_VERSION, ScenarioInfo, StepRecord, Verdict};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One client column: what the report says about it, and how to run it.
#[derive(Debug, Clone)]
pub struct ClientColumn {
    pub info: ClientInfo,
    /// The driver (`crane`, `skopeo`, `docker`).
    pub driver: String,
    pub bins: Binaries,
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Reports and cell directories (`<out>/cells/<scenario>/<client>/`).
    pub out_dir: PathBuf,
    pub jobs: usize,
    /// The `docker-credential-regcompat` binary.
    pub helper: PathBuf,
    pub progress: bool,
    pub run_id: String,
    /// Repository root, to write scenario paths relative to it.
    pub root: PathBuf,
}

/// The report and what the final process check found.
#[derive(Debug)]
pub struct RunOutcome {
    pub report: RunReport,
    /// Processes still carrying the run marker after every cell ended (killed then).
    pub leftovers: Vec<u32>,
}

/// A fresh run id: time-based, unique enough per machine.
pub fn new_run_id() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}-{}", now.as_secs(), std::process::id())
}

fn rfc3339_now() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    fake_registry::profile::bearer::humantime_rfc3339(now.as_secs() as i64)
}

/// Runs every (scenario, client) cell.
pub fn run_matrix(
    scenarios: &[Scenario],
    clients: &[ClientColumn],
    opts: &RunOptions,
) -> RunOutcome {
    let started = rfc3339_now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build();
    let cells: Vec<(usize, usize)> = (0..scenarios.len())
        .flat_map(|s| (0..clients.len()).map(move |c| (s, c)))
        .collect();
    let results: Mutex<Vec<Option<Cell>>> = Mutex::new(vec![None; cells.len()]);
    let bar = if opts.progress {
        indicatif::ProgressBar::new(cells.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    match &runtime {
        Ok(rt) => {
            let next = AtomicUsize::new(0);
            let jobs = opts.jobs.clamp(1, 64);
            std::thread::scope(|scope| {
                for _ in 0..jobs.min(cells.len().max(1)) {
                    scope.spawn(|| {
                        // bounded: each turn takes one cell index
                        loop {
                            let i = next.fetch_add(1, Ordering::SeqCst);
                            let Some(&(s, c)) = cells.get(i) else { break };
                            let (sc, col) = (&scenarios[s], &clients[c]);
                            bar.set_message(format!("{} × {}", sc.id, col.info.id));
                            let cell = run_cell(rt.handle(), sc, col, opts);
                            bar.println(format!(
                                "{:<15} {} × {}",
                                cell.verdict.as_str(),
                                sc.id,
                                col.info.id
                            ));
                            bar.inc(1);
                            if let Ok(mut r) = results.lock() {
                                r[i] = Some(cell);
                            }
                        }
                    });
                }
            });
        }
        Err(e) => {
            let mut r = results.lock().unwrap_or_else(|p| p.into_inner());
            for (i, &(s, c)) in cells.iter().enumerate() {
                r[i] = Some(harness_error(
                    &scenarios[s],
                    &clients[c],
                    format!("cannot start the async runtime: {e}"),
                    0,
                ));
            }
        }
    }
    bar.finish_and_clear();
    drop(runtime);
    let cells: Vec<Cell> = results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .flatten()
        .collect();
    // the last safety net: nothing the harness started may outlive the run
    let leftovers = process::kill_marked(RUN_ID_VAR, &opts.run_id);
    let report = RunReport {
        schema: SCHEMA_VERSION.into(),
        run_id: opts.run_id.clone(),
        started,
        finished: rfc3339_now(),
        regcompat_version: env!("CARGO_PKG_VERSION").into(),
        clients: clients.iter().map(|c| c.info.clone()).collect(),
        scenarios: scenarios
            .iter()
            .map(|s| scenario_info(s, &opts.root))
            .collect(),
        cells,
    };
    RunOutcome { report, leftovers }
}

pub fn scenario_info(s: &Scenario, root: &Path) -> ScenarioInfo {
    ScenarioInfo {
        id: s.id.clone(),
        title: s.meta.title.clone(),
        file: s
            .file
            .strip_prefix(root)
            .unwrap_or(&s.file)
            .display()
            .to_string(),
        description: s.meta.description.clone(),
    }
}

fn empty_cell(
    sc: &Scenario,
    col: &ClientColumn,
    verdict: Verdict,
    reason: String,
    ms: u64,
) -> Cell {
    Cell {
        scenario: sc.id.clone(),
        client: col.info.id.clone(),
        verdict,
        reason,
        duration_ms: ms,
        steps: Vec::new(),
        checks: Vec::new(),
        journal: Vec::new(),
        artifacts: Vec::new(),
    }
}

fn harness_error(sc: &Scenario, col: &ClientColumn, reason: String, ms: u64) -> Cell {
    empty_cell(sc, col, Verdict::Error, reason, ms)
}

/// Why `driver` cannot run this scenario at all, if it cannot.
pub fn not_applicable(sc: &Scenario, driver: &dyn Driver) -> Option<String> {
    for s in &sc.steps {
        if !driver.supports(s.action) {
            return Some(format!(
                "{} has no `{}` action",
                driver.name(),
                s.action.as_str()
            ));
        }
        if let Err(why) = driver.applicable(s) {
            return Some(why);
        }
    }
    None
}

/// Runs one cell; never panics on client or registry misbehaviour.
pub fn run_cell(
    rt: &tokio::runtime::Handle,
    sc: &Scenario,
    col: &ClientColumn,
    opts: &RunOptions,
) -> Cell {
    let t0 = Instant::now();
    let ms = |t: Instant| t.elapsed().as_millis() as u64;
    if let Some(why) = &col.info.unavailable {
        return empty_cell(sc, col, Verdict::NotRun, why.clone(), 0);
    }
    let Some(driver) = clients::driver(&col.driver) else {
        return empty_cell(
            sc,
            col,
            Verdict::NotRun,
            format!("no driver for client {:?}", col.driver),
            0,
        );
    };
    if let Some(why) = not_applicable(sc, driver.as_ref()) {
        return empty_cell(sc, col, Verdict::NotApplicable, why, 0);
    }
    let rel = PathBuf::from("cells")
        .join(&sc.id)
        .join(col.info.id.replace(['/', '@'], "_"));
    let dir = opts.out_dir.join(&rel);
    let _ = std::fs::remove_dir_all(&dir);
    let sandbox = match Sandbox::create(&dir) {
        Ok(s) => s,
        Err(e) => return harness_error(sc, col, e.to_string(), ms(t0)),
    };
    let fleet = rt.block_on(Fleet::start(
        sc.fleet.clone(),
        FleetOptions {
            state_dir: dir.join("fleet"),
            clock: Clock::system(),
        },
    ));
    let fleet = match fleet {
        Ok(f) => f,
        Err(e) => return harness_error(sc, col, format!("the fleet did not start: {e}"), ms(t0)),
    };
    let mut cell = match CellRun::new(sc, col, opts, &sandbox, &fleet, driver.as_ref()) {
        Ok(run) => run.execute(&rel),
        Err(reason) => harness_error(sc, col, reason, 0),
    };
    // one fleet per cell: its whole journal is the cell's evidence
    let journal = fleet.journal().all();
    rt.block_on(fleet.shutdown());
    // the checks need the whole journal, complete only once the client is done
    if cell.verdict != Verdict::Error {
        let checks = verdict::checks(sc, &cell.steps, count_steps(&cell.steps), &journal);
        let (v, reason) = verdict::verdict(&checks);
        cell.verdict = v;
        cell.reason = reason;
        cell.checks = checks;
    }
    cell.journal = journal
        .iter()
        .filter_map(|e| serde_json::to_value(e).ok())
        .collect();
    cell.duration_ms = ms(t0);
    let _ = std::fs::write(
        dir.join("journal.json"),
        serde_json::to_vec_pretty(&cell.journal).unwrap_or_default(),
    );
    cell.artifacts
        .push(rel.join("journal.json").display().to_string());
    cell
}

/// Steps are recorded per invocation; a step counts as run when its last invocation ran.
fn count_steps(records: &[StepRecord]) -> usize {
    records.iter().filter(|r| !r.action.contains(" (")).count()
}

/// Everything one cell needs while its client runs.
struct CellRun<'a> {
    sc: &'a Scenario,
    col: &'a ClientColumn,
    sandbox: &'a Sandbox,
    fleet: &'a RunningFleet,
    driver: &'a dyn Driver,
    env: Vec<(String, String)>,
    isolation: Isolation,
    secrets: Vec<(String, String)>,
    run_id: String,
}

impl<'a> CellRun<'a> {
    fn new(
        sc: &'a Scenario,
        col: &'a ClientColumn,
        opts: &RunOptions,
        sandbox: &'a Sandbox,
        fleet: &'a RunningFleet,
        driver: &'a dyn Driver,
    ) -> Result<Self, String> {
        let entries: Vec<(String, std::net::IpAddr)> = fleet
            .hosts()
            .iter()
            .map(|h| (h.hostname.clone(), h.addr.ip()))
            .collect();
        // the guard: refuses to run if any scenario host would resolve outside loopback
        sandbox.write_hosts(&entries).map_err(|e| e.to_string())?;
        let ca = std::fs::read_to_string(fleet.ca_pem_path())
            .map_err(|e| format!("cannot read the fleet CA: {e}"))?;
        let authorities: Vec<String> = fleet
            .hosts()
            .iter()
            .map(|h| h.authority().to_owned())
            .collect();
        sandbox
            .write_trust(&ca, &authorities)
            .map_err(|e| e.to_string())?;

        // the credential helper, first on PATH
        let bin = sandbox.root.join("bin");
        std::fs::create_dir_all(&bin).map_err(|e| format!("{}: {e}", bin.display()))?;
        let link = bin.join(credhelper::BINARY);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&opts.helper, &link)
            .map_err(|e| format!("cannot link the credential helper: {e}"))?;
        let mut env = sandbox.env(&opts.run_id);
        for (k, v) in env.iter_mut() {
            if k == "PATH" {
                *v = format!("{}:{v}", bin.display());
            }
        }
        let helper_file = sandbox.root.join("etc/credential-helper.json");
        env.push((
            credhelper::FILE_VAR.into(),
            helper_file.display().to_string(),
        ));
        env.push((
            credhelper::LOG_VAR.into(),
            sandbox
                .logs
                .join("credential-helper.log")
                .display()
                .to_string(),
        ));

        let creds = fleet.credentials();
        let authority = |name: &str| fleet.host(name).map(|h| h.authority().to_owned());
        if let Some(config) = client_config::docker_config(sc, creds, &authority)? {
            let text = serde_json::to_vec_pretty(&config).map_err(|e| e.to_string())?;
            crate::sandbox::write_file(&sandbox.docker_config.join("config.json"), &text)
                .map_err(|e| e.to_string())?;
        }
        let store = client_config::helper_store(sc, creds, &authority)?;
        let text = serde_json::to_vec_pretty(&store).map_err(|e| e.to_string())?;
        crate::sandbox::write_file(&helper_file, &text).map_err(|e| e.to_string())?;

        let mut secrets: Vec<(String, String)> = creds
            .iter()
            .map(|c| {
                (
                    c.secret.clone(),
                    format!("secret of {}/{}", c.host, c.principal),
                )
            })
            .collect();
        for s in &sc.steps {
            if let Some(p) = &s.password {
                secrets.push((p.clone(), "password of the scenario".into()));
            }
        }
        // base64 forms appear in config dumps and debug logs
        for (secret, label) in secrets.clone() {
            for c in creds {
                let user = c.username.clone().unwrap_or_default();
                use base64::Engine;
                let b =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"));
                secrets.push((b, format!("{label} (base64)")));
            }
        }
        Ok(CellRun {
            sc,
            col,
            sandbox,
            fleet,
            driver,
            env,
            isolation: Isolation::hosts(&sandbox.hosts_file),
            secrets,
            run_id: opts.run_id.clone(),
        })
    }

    fn execute(self, rel: &Path) -> Cell {
        let t0 = Instant::now();
        let cell_env = CellEnv {
            sandbox: self.sandbox,
            env: self.env.clone(),
            isolation: self.isolation.clone(),
            run_id: &self.run_id,
            registries: self
                .fleet
                .hosts()
                .iter()
                .filter(|h| h.role == "registry")
                .map(|h| h.authority().to_owned())
                .collect(),
        };
        let mut cell = empty_cell(self.sc, self.col, Verdict::Pass, String::new(), 0);
        let prepared = match self.driver.prepare(&cell_env, &self.col.bins) {
            Ok(p) => p,
            Err(e) => {
                return harness_error(
                    self.sc,
                    self.col,
                    format!(
                        "{} could not be prepared: {}",
                        self.driver.name(),
                        process::redact(&e, &self.secrets)
                    ),
                    t0.elapsed().as_millis() as u64,
                );
            }
        };
        let mut env = self.env.clone();
        env.extend(prepared.env.iter().cloned());
        'steps: for (i, step) in self.sc.steps.iter().enumerate() {
            if let Some(secs) = step.advance_clock {
                self.fleet.clock().advance(secs);
            }
            let resolved = match self.resolve(i, step) {
                Ok(r) => r,
                Err(e) => {
                    cell = harness_error(self.sc, self.col, format!("step {}: {e}", i + 1), 0);
                    break;
                }
            };
            let invocations = self
                .driver
                .invocations(&resolved, &cell_env, &self.col.bins);
            let n = invocations.len();
            for (j, inv) in invocations.into_iter().enumerate() {
                let last = j + 1 == n;
                let expected = if last { step.expect } else { Outcome::Success };
                let label = if last {
                    step.action.as_str().to_owned()
                } else {
                    format!(
                        "{} ({})",
                        step.action.as_str(),
                        inv.argv.get(1).cloned().unwrap_or_default()
                    )
                };
                let record = self.run_invocation(
                    &inv,
                    &env,
                    &label,
                    expected,
                    &format!("step{}-{}", i + 1, j + 1),
                );
                let deviated = record.timed_out
                    || (record.exit_code == Some(0)) != (expected == Outcome::Success);
                cell.steps.push(record);
                if deviated {
                    break 'steps;
                }
            }
        }
        for d in prepared.daemons {
            let log = d.log.clone();
            d.stop();
            if let Ok(r) = log.strip_prefix(&self.sandbox.root) {
                cell.artifacts.push(rel.join(r).display().to_string());
            }
        }
        let helper_log = self.sandbox.logs.join("credential-helper.log");
        if helper_log.exists() {
            cell.artifacts
                .push(rel.join("logs/credential-helper.log").display().to_string());
        }
        cell
    }

    fn resolve(&self, index: usize, step: &crate::scenario::Step) -> Result<ResolvedStep, String> {
        let authority = |name: &str| self.fleet.host(name).map(|h| h.authority().to_owned());
        let expand = |t: &Option<String>| t.as_ref().map(|t| scenario::expand(t, &authority));
        let (mut username, mut password, mut label) = (
            step.username.clone(),
            step.password.clone(),
            "password".to_owned(),
        );
        if let Some(p) = &step.principal {
            let c = client_config::credential(self.fleet.credentials(), p)
                .ok_or_else(|| format!("no credential for {p}"))?;
            username = username.or_else(|| c.username.clone());
            if password.is_none() {
                password = Some(c.secret.clone());
                label = format!("secret of {p}");
            } else {
                label = "the scenario's wrong password".into();
            }
        }
        let mut r = ResolvedStep {
            index,
            action: step.action,
            image: expand(&step.image),
            from: expand(&step.from),
            to: expand(&step.to),
            registry: step.registry.as_ref().and_then(|n| authority(n)),
            username,
            password,
            password_label: label,
            platform: step.platform.clone(),
            oci_layout: None,
            docker_archive: None,
        };
        if step.action == scenario::Action::Push {
            let config = step.source.clone().unwrap_or_default();
            let spec = config.spec()?;
            let force_index = spec.force_index;
            let image = fake_registry::fixtures::generate(&spec.with_seed(index as u64 + 1))
                .map_err(|e| e.to_string())?;
            let layout = self.sandbox.work.join(format!("push-{index}"));
            image_source::write_oci_layout(&image, &layout, "latest")
                .map_err(|e| format!("cannot write the OCI layout: {e}"))?;
            r.oci_layout = Some(layout);
            if !force_index {
                let archive = self.sandbox.work.join(format!("push-{index}.tar"));
                let tag = r.image.clone().unwrap_or_default();
                image_source::write_docker_archive(&image, &archive, &tag)
                    .map_err(|e| format!("cannot write the docker archive: {e}"))?;
                r.docker_archive = Some(archive);
            }
        }
        Ok(r)
    }

    fn run_invocation(
        &self,
        inv: &Invocation,
        env: &[(String, String)],
        action: &str,
        expected: Outcome,
        name: &str,
    ) -> StepRecord {
        let mut env = env.to_vec();
        env.extend(inv.env.iter().cloned());
        let spec = Spec {
            argv: inv.argv.clone(),
            env,
            cwd: self.sandbox.work.clone(),
            stdin: inv.stdin.as_ref().map(|(b, _)| b.clone()),
            stdout: self.sandbox.logs.join(format!("{name}.out")),
            stderr: self.sandbox.logs.join(format!("{name}.err")),
            isolation: self.isolation.clone(),
        };
        let repro = process::repro(&spec, inv.stdin.as_ref().map(|(_, shown)| shown.as_str()));
        let timeout = Duration::from_secs(self.sc.meta.timeout);
        let (exit_code, timed_out, duration_ms, err) = match process::run(&spec, timeout) {
            Ok(f) => (
                f.exit_code,
                f.timed_out,
                f.duration.as_millis() as u64,
                None,
            ),
            Err(e) => (None, false, 0, Some(e.to_string())),
        };
        let redact = |t: String| process::redact(&t, &self.secrets);
        let mut stderr_tail = redact(process::tail(&spec.stderr, process::TAIL_BYTES));
        if let Some(e) = err {
            stderr_tail = format!("harness: {e}\n{stderr_tail}");
        }
        StepRecord {
            action: action.to_owned(),
            argv: spec.argv.iter().map(|a| redact(a.clone())).collect(),
            repro: redact(repro),
            exit_code,
            timed_out,
            duration_ms,
            stdout_tail: redact(process::tail(&spec.stdout, process::TAIL_BYTES)),
            stderr_tail,
            expected: expected.as_str().to_owned(),
        }
    }
}
