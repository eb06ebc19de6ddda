//! The matrix: scenarios × clients, cells in parallel (`-j`), each with its own sandbox,
//! fleet, hosts file, CA bundle and (for docker) daemon. Verdicts only from real runs.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use reports::model::{Cell, CheckRecord, ClientInfo, StepRecord, Verdict};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::clients::{self, CellEnv, Driver, ResolvedStep};
use crate::credhelper;
use crate::daemon::{self, Daemon};
use crate::process::{self, Spec};
use crate::sandbox::Sandbox;
use crate::scenario::{Scenario, parse::placeholders};
use crate::verdict;

/// One registry host of a running cell fleet.
#[derive(Debug, Clone)]
pub struct FleetHost {
    /// The scenario's name for it (`acr`).
    pub name: String,
    pub hostname: String,
    /// `hostname` or `hostname:port`, as it appears in references.
    pub authority: String,
    pub addr: IpAddr,
}

/// A fleet started for one cell.
pub trait CellFleet: Send {
    fn hosts(&self) -> Vec<FleetHost>;
    fn ca_pem(&self) -> String;
    /// The whole journal, as JSON entries.
    fn journal(&self) -> Vec<Value>;
    fn shutdown(self: Box<Self>);
}

/// Starts a scenario's fleet for cell number `index` (which picks its loopback range).
pub trait FleetLauncher: Send + Sync {
    fn start(
        &self,
        scenario: &Scenario,
        index: usize,
        dir: &Path,
    ) -> Result<Box<dyn CellFleet>, String>;
}

/// Per-cell loopback addresses that never collide between parallel cells:
/// cell k, host h → 127.(1 + k / 250).(k % 250).(2 + h).
pub fn cell_address(cell: usize, host: usize) -> Option<IpAddr> {
    let b = 1 + cell / 250;
    let c = cell % 250;
    let d = 2 + host;
    (b <= 254 && d <= 254).then(|| IpAddr::from([127, b as u8, c as u8, d as u8]))
}

/// A client column: the binary (or why there is none).
#[derive(Debug, Clone)]
pub struct Column {
    pub info: ClientInfo,
    /// The driver (manifest) name: `crane`.
    pub driver: String,
    pub binaries: BTreeMap<String, PathBuf>,
}

/// What to run.
pub struct Plan {
    pub scenarios: Vec<Scenario>,
    pub columns: Vec<Column>,
    pub jobs: usize,
    /// Cells' sandboxes go under here (`<work>/<scenario>/<client>`).
    pub work_dir: PathBuf,
    pub run_id: String,
    /// Directory holding `docker-credential-regcompat` (prepended to PATH).
    pub helper_dir: Option<PathBuf>,
    pub keep_sandboxes: bool,
}

/// Run the matrix; cells come back in (scenario, column) order.
pub fn run(plan: &Plan, fleet: &dyn FleetLauncher, progress: &indicatif::ProgressBar) -> Vec<Cell> {
    let work: Vec<(usize, usize)> = (0..plan.scenarios.len())
        .flat_map(|s| (0..plan.columns.len()).map(move |c| (s, c)))
        .collect();
    progress.set_length(work.len() as u64);
    let next = Mutex::new(0usize);
    let results: Mutex<BTreeMap<usize, Cell>> = Mutex::new(BTreeMap::new());
    std::thread::scope(|scope| {
        for _ in 0..plan.jobs.clamp(1, 64) {
            scope.spawn(|| {
                loop {
                    let k = {
                        let Ok(mut n) = next.lock() else { return };
                        let k = *n;
                        *n += 1;
                        k
                    };
                    let Some(&(s, c)) = work.get(k) else { return };
                    let scenario = &plan.scenarios[s];
                    let column = &plan.columns[c];
                    progress.set_message(format!("{} × {}", scenario.id, column.info.id));
                    let cell = run_cell(plan, fleet, scenario, column, k);
                    progress.inc(1);
                    if let Ok(mut r) = results.lock() {
                        r.insert(k, cell);
                    }
                }
            });
        }
    });
    results
        .into_inner()
        .map(|r| r.into_values().collect())
        .unwrap_or_default()
}

fn empty_cell(scenario: &Scenario, column: &Column, verdict: Verdict, reason: String) -> Cell {
    Cell {
        scenario: scenario.id.clone(),
        client: column.info.id.clone(),
        verdict,
        reason,
        duration_ms: 0,
        steps: vec![],
        checks: vec![],
        journal: vec![],
        artifacts: vec![],
    }
}

/// One cell, never panicking: harness failures become `error`.
pub fn run_cell(
    plan: &Plan,
    fleet: &dyn FleetLauncher,
    scenario: &Scenario,
    column: &Column,
    index: usize,
) -> Cell {
    if let Some(why) = &column.info.unavailable {
        return empty_cell(scenario, column, Verdict::NotRun, why.clone());
    }
    let Some(driver) = clients::driver(&column.driver) else {
        return empty_cell(
            scenario,
            column,
            Verdict::NotRun,
            format!("no driver for client `{}`", column.driver),
        );
    };
    let caps = driver.capabilities();
    if let Some(step) = scenario
        .steps
        .iter()
        .find(|s| !caps.contains(s.action.get_ref()))
    {
        return empty_cell(
            scenario,
            column,
            Verdict::NotApplicable,
            format!(
                "{} cannot `{}`",
                column.driver,
                step.action.get_ref().as_str()
            ),
        );
    }
    let started = Instant::now();
    let dir = plan
        .work_dir
        .join(&scenario.id)
        .join(column.info.id.replace(['@', '/'], "_"));
    let mut cell = match execute(plan, fleet, scenario, column, driver.as_ref(), index, &dir) {
        Ok(cell) => cell,
        Err(why) => empty_cell(scenario, column, Verdict::Error, why),
    };
    cell.duration_ms = started.elapsed().as_millis() as u64;
    if !plan.keep_sandboxes {
        let _ = std::fs::remove_dir_all(&dir);
    }
    cell
}

fn execute(
    plan: &Plan,
    fleet: &dyn FleetLauncher,
    scenario: &Scenario,
    column: &Column,
    driver: &dyn Driver,
    index: usize,
    dir: &Path,
) -> Result<Cell, String> {
    let _ = std::fs::remove_dir_all(dir);
    let sb = Sandbox::create(dir, &plan.run_id).map_err(|e| e.to_string())?;
    let running = fleet.start(scenario, index, &dir.join("fleet"))?;
    let result = with_fleet(plan, scenario, column, driver, &sb, running.as_ref());
    let journal = running.journal();
    running.shutdown();
    let (steps, mut checks, secrets) = result?;
    let journal: Vec<Value> = journal
        .into_iter()
        .map(|e| redact_value(e, &secrets))
        .collect();
    checks.extend(verdict::check_journal(&scenario.expect, &journal));
    let (v, reason) = verdict::decide(&checks, &journal);
    Ok(Cell {
        scenario: scenario.id.clone(),
        client: column.info.id.clone(),
        verdict: v,
        reason,
        duration_ms: 0,
        steps,
        checks,
        journal,
        artifacts: vec![],
    })
}

/// Belt and braces: the journal redacts at record time; the cell's known secrets are
/// scrubbed again before anything is written.
fn redact_value(v: Value, secrets: &[String]) -> Value {
    match serde_json::to_string(&v) {
        Ok(s) => serde_json::from_str(&process::redact(&s, secrets)).unwrap_or(v),
        Err(_) => v,
    }
}

type Executed = (Vec<StepRecord>, Vec<CheckRecord>, Vec<String>);

fn with_fleet(
    plan: &Plan,
    scenario: &Scenario,
    column: &Column,
    driver: &dyn Driver,
    sb: &Sandbox,
    fleet: &dyn CellFleet,
) -> Result<Executed, String> {
    let hosts = fleet.hosts();
    let entries: Vec<(String, IpAddr)> =
        hosts.iter().map(|h| (h.hostname.clone(), h.addr)).collect();
    sb.write_hosts(&entries).map_err(|e| e.to_string())?;
    let ca = fleet.ca_pem();
    sb.write_ca(&ca).map_err(|e| e.to_string())?;
    let authority: BTreeMap<String, String> = hosts
        .iter()
        .map(|h| (h.name.clone(), h.authority.clone()))
        .collect();
    let expand = |s: &str| -> Result<String, String> {
        let mut out = s.to_string();
        for p in placeholders(s) {
            let a = authority
                .get(p)
                .ok_or_else(|| format!("fleet has no host `{p}`"))?;
            out = out.replace(&format!("{{{p}}}"), a);
        }
        Ok(out)
    };
    let secrets = scenario_secrets(scenario);
    write_client_config(scenario, sb, &expand)?;
    let (local_image, layer_tar) = write_local_image(&sb.work, &scenario.id)?;

    let mut env = sb.env();
    if let Some(h) = &plan.helper_dir {
        let path = env.get("PATH").cloned().unwrap_or_default();
        env.insert("PATH".into(), format!("{}:{path}", h.display()));
    }
    env.insert(
        credhelper::STORE_ENV.into(),
        sb.root.join("credhelper.json").display().to_string(),
    );
    let cell_env = CellEnv {
        sandbox: sb,
        binaries: &column.binaries,
        local_image: &local_image,
        layer_tar: &layer_tar,
    };
    let _daemon = if driver.needs_daemon() {
        Some(start_dockerd(sb, &cell_env, &env, &hosts, &ca)?)
    } else {
        None
    };

    let mut steps = Vec::new();
    let mut checks = Vec::new();
    for step in &scenario.steps {
        let resolved = ResolvedStep {
            action: *step.action.get_ref(),
            image: expand(
                step.image
                    .as_ref()
                    .map(|s| s.get_ref().as_str())
                    .unwrap_or(""),
            )?,
            to: step.to.as_ref().map(|t| expand(t.get_ref())).transpose()?,
            username: step.username.clone(),
            password: step.password.clone(),
        };
        let invocations = driver.invocations(&resolved, &cell_env)?;
        let n = invocations.len();
        let mut last = None;
        for (i, inv) in invocations.into_iter().enumerate() {
            let mut spec = Spec::new(&inv.program, inv.args.clone(), &sb.work);
            spec.env = env.clone();
            spec.env.extend(inv.env);
            spec.binds = vec![(sb.hosts.clone(), "/etc/hosts".into())];
            spec.timeout = Duration::from_secs(scenario.timeout_secs);
            spec.secrets = secrets.clone();
            let f = process::run(&spec).map_err(|e| e.to_string())?;
            let mut argv = vec![inv.program.display().to_string()];
            argv.extend(inv.args.iter().map(|a| process::redact(a, &secrets)));
            let intermediate = i + 1 < n;
            let rec = StepRecord {
                action: resolved.action.as_str().into(),
                argv,
                repro: spec.repro(),
                exit_code: f.exit_code,
                timed_out: f.timed_out,
                duration_ms: f.duration.as_millis() as u64,
                stdout_tail: tail_lines(&f.stdout_tail, 40),
                stderr_tail: tail_lines(&f.stderr_tail, 40),
                expected: if intermediate {
                    "success".into()
                } else {
                    step.expect.as_str().into()
                },
            };
            let ok = f.success();
            steps.push(rec.clone());
            last = Some(rec);
            // A failed preparatory command (docker import before push) ends the step.
            if intermediate && !ok {
                break;
            }
        }
        let Some(rec) = last else { continue };
        let check = verdict::check_step(&rec);
        let stop = !check.passed;
        checks.push(check);
        if stop {
            break;
        }
    }
    Ok((steps, checks, secrets))
}

fn tail_lines(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Every password/secret the scenario mentions (inline principals included).
fn scenario_secrets(s: &Scenario) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for st in &s.steps {
        out.extend(st.password.clone());
    }
    for a in s.client.auth.iter().chain(&s.client.helper_credentials) {
        out.extend(a.password.clone());
        out.extend(a.identitytoken.clone());
    }
    for h in &s.host {
        if let Some(ps) = h.get("principal").and_then(|p| p.as_array()) {
            for p in ps {
                if let Some(sec) = p.get("secret").and_then(|v| v.as_str()) {
                    out.push(sec.to_string());
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// `config.json` (auths with base64 `user:password` or `identitytoken`, credsStore,
/// credHelpers) and the helper's store.
fn write_client_config(
    s: &Scenario,
    sb: &Sandbox,
    expand: &dyn Fn(&str) -> Result<String, String>,
) -> Result<(), String> {
    use base64::Engine as _;
    let mut auths = serde_json::Map::new();
    for a in &s.client.auth {
        let mut entry = serde_json::Map::new();
        let user = a.username.clone().unwrap_or_default();
        let pass = a.password.clone().unwrap_or_default();
        entry.insert(
            "auth".into(),
            json!(base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))),
        );
        if let Some(t) = &a.identitytoken {
            entry.insert("identitytoken".into(), json!(t));
        }
        auths.insert(expand(&a.host)?, Value::Object(entry));
    }
    let mut config = json!({ "auths": auths });
    if let Some(store) = &s.client.creds_store {
        config["credsStore"] = json!(store);
    }
    if !s.client.cred_helpers.is_empty() {
        let mut helpers = serde_json::Map::new();
        for (host, helper) in &s.client.cred_helpers {
            helpers.insert(expand(host)?, json!(helper));
        }
        config["credHelpers"] = Value::Object(helpers);
    }
    let path = sb.docker_config.join("config.json");
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&config).unwrap_or_default(),
    )
    .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut store = credhelper::Store::new();
    for a in &s.client.helper_credentials {
        let host = expand(&a.host)?;
        store.insert(
            credhelper::normalise(&host),
            credhelper::Credential {
                server_url: host,
                username: a.username.clone().unwrap_or_default(),
                secret: a
                    .password
                    .clone()
                    .or_else(|| a.identitytoken.clone())
                    .unwrap_or_default(),
            },
        );
    }
    credhelper::save(&sb.root.join("credhelper.json"), &store).map_err(|e| e.to_string())
}

fn sha256_hex(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// A one-layer OCI image layout (for pushes) and its layer as a plain tar (for
/// `docker import`). Content depends on the scenario so pushes are distinct.
fn write_local_image(work: &Path, id: &str) -> Result<(PathBuf, PathBuf), String> {
    let io = |e: std::io::Error| e.to_string();
    let mut layer = Vec::new();
    {
        let mut b = tar::Builder::new(&mut layer);
        let content = format!("regcompat scenario {id}\n");
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        b.append_data(&mut h, "regcompat.txt", content.as_bytes())
            .map_err(io)?;
        b.finish().map_err(io)?;
    }
    let layer_digest = sha256_hex(&layer);
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer_digest}")]},
        "config": {}
    }))
    .map_err(|e| e.to_string())?;
    let config_digest = sha256_hex(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": format!("sha256:{config_digest}"), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": format!("sha256:{layer_digest}"), "size": layer.len()}]
    }))
    .map_err(|e| e.to_string())?;
    let manifest_digest = sha256_hex(&manifest);
    let dir = work.join("local-image");
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).map_err(io)?;
    for (d, b) in [
        (&layer_digest, &layer),
        (&config_digest, &config),
        (&manifest_digest, &manifest),
    ] {
        std::fs::write(blobs.join(d), b).map_err(io)?;
    }
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).map_err(io)?;
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": format!("sha256:{manifest_digest}"), "size": manifest.len(),
                       "annotations": {"org.opencontainers.image.ref.name": "latest"}}]
    });
    std::fs::write(dir.join("index.json"), index.to_string()).map_err(io)?;
    let tar_path = work.join("layer.tar");
    std::fs::write(&tar_path, &layer).map_err(io)?;
    Ok((dir, tar_path))
}

/// The cell's dockerd: `/etc/docker` replaced by the cell's (certs.d per fleet host).
fn start_dockerd(
    sb: &Sandbox,
    cell: &CellEnv<'_>,
    env: &BTreeMap<String, String>,
    hosts: &[FleetHost],
    ca: &str,
) -> Result<Daemon, String> {
    let dockerd = cell.binary("dockerd")?;
    let docker = cell.binary("docker")?.to_path_buf();
    let etc = sb.root.join("etc-docker");
    for h in hosts {
        let d = etc.join("certs.d").join(&h.authority);
        std::fs::create_dir_all(&d).map_err(|e| e.to_string())?;
        std::fs::write(d.join("ca.crt"), ca).map_err(|e| e.to_string())?;
    }
    std::fs::write(etc.join("daemon.json"), "{}").map_err(|e| e.to_string())?;
    let mut spec = daemon::dockerd_spec(dockerd, sb, &etc);
    spec.env = env.clone();
    let sock = clients::docker::socket(cell);
    let work = sb.work.clone();
    let ping_env = env.clone();
    Daemon::start("dockerd", &spec, Duration::from_secs(60), || {
        if !sock.exists() {
            return false;
        }
        let mut p = Spec::new(&docker, vec!["version".into()], &work);
        p.env = ping_env.clone();
        p.env
            .insert("DOCKER_HOST".into(), format!("unix://{}", sock.display()));
        p.timeout = Duration::from_secs(5);
        process::run(&p).is_ok_and(|f| f.success())
    })
}
