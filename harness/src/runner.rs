//! The matrix: every scenario × every client, each cell in its own sandbox with its own fleet.
//! The path of a cell reads straight: scenario file → sandbox (hosts file, CA, config.json) →
//! client processes → fake registry → journal → verdict → [`reports::Cell`].

use crate::clients::{CellEnv, DaemonSpec, Driver, Mirror, ResolvedAction};
use crate::network::CellNetwork;
use crate::process::Invocation;
use crate::sandbox::Sandbox;
use crate::scenario::{Action, Count, Outcome, Scenario};
use base64::Engine as _;
use fake_registry::auth::PrincipalKind;
use fake_registry::config::FleetConfig;
use fake_registry::fault::Faults;
use fake_registry::fixtures::{self, Format, Image, ImageSpec};
use fake_registry::fleet::{Fleet, FleetOptions, RunningFleet};
use fake_registry::journal::{Entry, Redactor};
use reports::{Cell, CheckRecord, StepRecord, Verdict};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Names the built `docker-credential-regcompat` (set by `cargo xtask run-scenarios`).
pub const CREDHELPER_BIN_ENV: &str = "REGCOMPAT_CREDHELPER_BIN";

/// The null GUID `az acr login` writes as the username beside an identity token.
const NULL_GUID: &str = "00000000-0000-0000-0000-000000000000";

/// One client column: a driver and the binary it runs (or why it cannot run).
pub struct ClientUnderTest {
    pub id: String,
    pub driver: Box<dyn Driver>,
    pub binary: Result<PathBuf, String>,
    /// Binary directories of the clients this one requires (buildkitd, containerd, runc…),
    /// put on the cell's `PATH`.
    pub tools: Vec<PathBuf>,
}

/// Where a host the scenario calls unreachable resolves for the client: a loopback address
/// nothing listens on (cells use 127.10.0.0 – 127.249.255.255), so connections are refused.
const UNREACHABLE: Ipv4Addr = Ipv4Addr::new(127, 255, 255, 254);

/// Called once a cell's steps have run, while its fleet and daemons are still up; the cell
/// is torn down when the returned future ends. `cargo xtask repro` waits there for Ctrl-C.
pub type Hold = Box<
    dyn Fn(&[LiveStep]) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
        + Send
        + Sync,
>;

/// A step as it ran, with the command line that runs it again by hand *unredacted* (the
/// scenario's test credentials in it): for the terminal of `cargo xtask repro`, never for a
/// report — the report's [`StepRecord::repro`] is redacted.
pub struct LiveStep {
    pub record: StepRecord,
    pub command: String,
}

/// How a cell runs beyond the matrix's defaults.
#[derive(Default)]
pub struct CellOptions {
    /// Keep the sandbox of a cell that fails or errors (its config.json, build contexts,
    /// daemon logs) at [`sandbox_dir`] instead of deleting it: the repro lines of its steps
    /// name files there.
    pub keep_failed: bool,
    /// See [`Hold`].
    pub hold: Option<Hold>,
}

/// Where the sandbox of `scenario` × `client` lives under a run's scratch directory.
pub fn sandbox_dir(scratch: &Path, scenario: &str, client: &str) -> PathBuf {
    scratch.join(format!("{scenario}--{}", client.replace('@', "-")))
}

/// Runs one cell. `index` picks the cell's loopback addresses (127.A.B.2 upwards), so cells
/// running in parallel never share an address.
pub async fn run_cell(
    scenario_path: &Path,
    client: &ClientUnderTest,
    index: usize,
    scratch: &Path,
) -> Cell {
    run_cell_with(
        scenario_path,
        client,
        index,
        scratch,
        &CellOptions::default(),
    )
    .await
}

/// [`run_cell`] with options: keep a failing cell's sandbox, or hold the cell up after its
/// steps.
pub async fn run_cell_with(
    scenario_path: &Path,
    client: &ClientUnderTest,
    index: usize,
    scratch: &Path,
    options: &CellOptions,
) -> Cell {
    let started = Instant::now();
    let scenario = match Scenario::load(scenario_path) {
        Ok(s) => s,
        Err(e) => {
            return cell_of(
                scenario_path,
                client,
                Verdict::Error,
                format!("scenario: {e}"),
                started,
            );
        }
    };
    let bin = match &client.binary {
        Ok(b) => b.clone(),
        Err(why) => return cell_of(scenario_path, client, Verdict::NotRun, why.clone(), started),
    };
    // The row's scenario, else the first of its variants the client can express.
    let is_variant = scenario.variant_of.is_some();
    let (scenario, variant) = match as_expressed(scenario, client) {
        Ok(scenario) => (scenario, None),
        // A variant run as its own file (the mutation test, `repro`) has no family to try.
        Err(why) if is_variant => {
            return cell_of(scenario_path, client, Verdict::NotApplicable, why, started);
        }
        Err(why) => match family_member(scenario_path, client, why) {
            Ok((scenario, id)) => (scenario, Some(id)),
            Err((verdict, reason)) => {
                return cell_of(scenario_path, client, verdict, reason, started);
            }
        },
    };
    // Named after the row: one cell per row and client, whichever member ran.
    let root = sandbox_dir(scratch, &stem(scenario_path), &client.id);
    let hold = options.hold.as_ref();
    let mut cell = match run_in_sandbox(scenario, client, &bin, index, &root, hold).await {
        Ok(cell) => cell,
        Err(e) => cell_of(
            scenario_path,
            client,
            Verdict::Error,
            format!("harness: {e}"),
            started,
        ),
    };
    // The sandbox holds config.json with the scenario's test secrets: it is kept only when
    // asked for, for a cell that did not pass.
    let keep = options.keep_failed && matches!(cell.verdict, Verdict::Fail | Verdict::Error);
    if !keep {
        Sandbox::at(&root).remove();
    }
    cell.scenario = stem(scenario_path);
    cell.variant = variant;
    cell.duration_ms = started.elapsed().as_millis() as u64;
    cell
}

/// The scenario as `client` runs it — setup logins as `config.json` for a client without a
/// login command — or why the client cannot express it (an action it does not have, a
/// setup it cannot take).
fn as_expressed(scenario: Scenario, client: &ClientUnderTest) -> Result<Scenario, String> {
    let scenario = if client.driver.supports(Action::Login) {
        scenario
    } else {
        scenario.with_setup_logins_as_config()
    };
    if let Some(step) = scenario
        .steps
        .iter()
        .find(|s| !client.driver.supports(s.action))
    {
        return Err(format!(
            "{} has no `{}` action",
            client.id,
            step.action.as_str()
        ));
    }
    if let Some(why) = client.driver.unsupported_setup(&scenario.client) {
        return Err(format!("{}: {why}", client.id));
    }
    Ok(scenario)
}

/// For a client that cannot express the base scenario at `base` (`why`): the first of its
/// variants ([`crate::scenario::variants_of`], in file-name order) the client can express,
/// with its id. Else `not-applicable`, naming what the base needs and every variant tried —
/// or `error` when a variant does not load.
fn family_member(
    base: &Path,
    client: &ClientUnderTest,
    why: String,
) -> Result<(Scenario, String), (Verdict, String)> {
    let variants = crate::scenario::variants_of(base)
        .map_err(|e| (Verdict::Error, format!("scenario: {e}")))?;
    let mut tried = Vec::new();
    for path in variants {
        let variant =
            Scenario::load(&path).map_err(|e| (Verdict::Error, format!("scenario: {e}")))?;
        let id = variant.id.clone();
        match as_expressed(variant, client) {
            Ok(variant) => return Ok((variant, id)),
            Err(no) => tried.push(format!("`{id}`: {no}")),
        }
    }
    if tried.is_empty() {
        return Err((Verdict::NotApplicable, why));
    }
    Err((
        Verdict::NotApplicable,
        format!(
            "{why}; nor can it run a variant of this scenario ({})",
            tried.join("; ")
        ),
    ))
}

fn cell_of(
    scenario_path: &Path,
    client: &ClientUnderTest,
    verdict: Verdict,
    reason: String,
    started: Instant,
) -> Cell {
    Cell {
        duration_ms: started.elapsed().as_millis() as u64,
        ..Cell::without_evidence(stem(scenario_path), client.id.clone(), verdict, reason)
    }
}

pub fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Loopback address of cell `index`'s first host.
pub fn cell_address(index: usize) -> Ipv4Addr {
    let i = index % (240 * 256);
    Ipv4Addr::new(127, 10 + (i / 256) as u8, (i % 256) as u8, 2)
}

async fn run_in_sandbox(
    mut scenario: Scenario,
    client: &ClientUnderTest,
    bin: &Path,
    index: usize,
    root: &Path,
    hold: Option<&Hold>,
) -> Result<Cell, String> {
    let _ = std::fs::remove_dir_all(root);
    let mut sandbox = Sandbox::create(root).map_err(|e| e.to_string())?;
    let network = CellNetwork::for_cell()?;
    sandbox.netns = network.namespace();

    // Principals by name, for config.json and logins.
    let mut principals: Principals = BTreeMap::new();
    for h in &scenario.hosts {
        for p in &h.principals {
            principals.insert(
                p.name.clone(),
                (p.username.clone(), p.secret.clone(), p.kind),
            );
        }
    }
    let hosts_by_name: Vec<String> = scenario
        .hosts
        .iter()
        .map(|h| h.name.get_ref().clone())
        .collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    // The fleet takes the hosts; the rest of the scenario drives the client.
    let specs = FleetConfig::from_hosts(std::mem::take(&mut scenario.hosts)).into_hosts(now)?;
    let fleet = start_fleet(&network, specs, root, index).await?;

    let result = drive(
        &fleet,
        &sandbox,
        client,
        bin,
        &scenario,
        &principals,
        &hosts_by_name,
        hold,
    )
    .await;
    fleet.shutdown().await;
    let network_line = network.describe();
    drop(network);
    let (steps, checks, journal, artifacts) = result?;
    let (verdict, reason) = judge(&steps, &checks);
    Ok(Cell {
        scenario: scenario.id.clone(),
        variant: None,
        client: client.id.clone(),
        verdict,
        reason,
        duration_ms: 0,
        steps,
        checks,
        journal,
        artifacts,
        known: None,
        network: Some(network_line),
    })
}

/// Starts the cell's fleet: in a private network on the namespace's runtime (whose threads
/// live in it) from TEST-NET-2's first address, else on the cell's own loopback addresses.
async fn start_fleet(
    network: &CellNetwork,
    specs: Vec<fake_registry::fleet::HostSpec>,
    root: &Path,
    index: usize,
) -> Result<RunningFleet, String> {
    let mut options = FleetOptions::new(root.join("fleet"));
    let started = match network.runtime() {
        Some(runtime) => {
            options.first_address = fake_registry::addresses::PRIVATE_FIRST_ADDRESS;
            options.private_network = true;
            runtime
                .spawn(Fleet::start(specs, options))
                .await
                .map_err(|e| format!("fake registry: {e}"))?
        }
        None => {
            options.first_address = cell_address(index);
            Fleet::start(specs, options).await
        }
    };
    started.map_err(|e| format!("fake registry: {e}"))
}

/// The verdict of a cell whose client ran: `fail` at the first step that did not go as
/// expected or the first journal check that does not hold, else `pass`.
pub fn judge(steps: &[StepRecord], checks: &[CheckRecord]) -> (Verdict, String) {
    if let Some(s) = steps.iter().find(|s| !step_met(s)) {
        let what = if s.preparation {
            format!(
                "preparation of `{}` (`{}`) must succeed, got",
                s.action,
                s.argv
                    .first()
                    .map_or("?", |a| a.rsplit('/').next().unwrap_or(a))
            )
        } else {
            format!("`{}` expected {}, got", s.action, s.expected)
        };
        // stderr last: its lines win, but Maven (Jib) prints its failure on stdout.
        let line = client_error_line(&format!("{}\n{}", s.stdout_tail, s.stderr_tail))
            .map(|l| format!(": {l}"))
            .unwrap_or_default();
        return (Verdict::Fail, format!("{what} {}{line}", describe_exit(s)));
    }
    if steps.is_empty() {
        return (Verdict::Fail, "no client command ran".into());
    }
    if let Some(c) = checks.iter().find(|c| !c.passed) {
        return (Verdict::Fail, format!("{}: {}", c.description, c.detail));
    }
    (
        Verdict::Pass,
        format!(
            "{} step(s) as expected, {} journal check(s) hold",
            steps.len(),
            checks.len()
        ),
    )
}

/// Whether one command went as the scenario expects. A failure must be *clean*: the client
/// exited on its own with a non-zero status. A client killed at the timeout (a hang) or that
/// never started meets no expectation but `any`'s "it ended" — and not even that when it
/// never started. A preparation command must succeed.
pub fn step_met(s: &StepRecord) -> bool {
    let exited = s.exit_code.is_some() && !s.timed_out;
    let succeeded = exited && s.exit_code == Some(0);
    if s.preparation {
        return succeeded;
    }
    match s.expected.as_str() {
        "success" => succeeded,
        "failure" => exited && !succeeded,
        // `any`: either outcome of a process that ran to its end.
        _ => exited,
    }
}

/// The client's own summary of a failure: Maven's `[ERROR] Failed to execute goal …` line
/// (its cause, without the goal prefix), else the last line that names an error (error,
/// denied, fatal, unauthorized, forbidden, failed) and is not part of a stack trace or of
/// Maven's boilerplate. ANSI colours are removed; a long line keeps its head and its tail,
/// where Go and Java error chains put the status.
pub fn client_error_line(output: &str) -> Option<String> {
    let lines: Vec<String> = output
        .lines()
        .map(|l| strip_ansi(l).trim_end().to_owned())
        .collect();
    if let Some(goal) = lines
        .iter()
        .find(|l| l.starts_with("[ERROR] Failed to execute goal"))
    {
        let cause = goal
            .split_once(" on project ")
            .and_then(|(_, rest)| rest.split_once(": "))
            .map_or(goal.as_str(), |(_, cause)| cause);
        return Some(shorten(&format!("[ERROR] {cause}")));
    }
    const BOILERPLATE: &[&str] = &[
        "[Help ",
        "Re-run Maven",
        "For more information about the errors",
        "full stack trace",
    ];
    const WORDS: &[&str] = &[
        "error",
        "denied",
        "fatal",
        "unauthorized",
        "forbidden",
        "failed",
    ];
    // The registry's own answer, when a line quotes it, says more than a closing summary
    // ("no image was built").
    const ANSWERS: &[&str] = &[
        "400",
        "401",
        "403",
        "404",
        "unauthorized",
        "denied",
        "forbidden",
        "not found",
    ];
    let candidates: Vec<&String> = lines
        .iter()
        .rev()
        .filter(|l| {
            !l.starts_with(char::is_whitespace)
                && !l.contains(".go:")
                && !l.starts_with("Caused by:")
                && l.trim() != "[ERROR]"
                && !BOILERPLATE.iter().any(|b| l.contains(b))
        })
        .filter(|l| {
            let lower = l.to_ascii_lowercase();
            WORDS.iter().any(|w| lower.contains(w))
        })
        .collect();
    candidates
        .iter()
        .find(|l| {
            let lower = l.to_ascii_lowercase();
            ANSWERS.iter().any(|a| lower.contains(a))
        })
        .or(candidates.first())
        .map(|l| shorten(l))
}

/// At most 300 characters: the first 120 and the last 170 of a longer line.
fn shorten(line: &str) -> String {
    let chars: Vec<char> = line.chars().collect();
    if chars.len() <= 300 {
        return line.to_owned();
    }
    let head: String = chars[..120].iter().collect();
    let tail: String = chars[chars.len() - 170..].iter().collect();
    format!("{head} … {tail}")
}

/// A line without ANSI escape sequences (`ESC [ … letter`).
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for n in chars.by_ref() {
                    if n.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

fn describe_exit(s: &StepRecord) -> String {
    if s.timed_out {
        "a timeout (killed)".into()
    } else {
        match s.exit_code {
            Some(0) => "success (exit 0)".into(),
            Some(c) => format!("failure (exit {c})"),
            None => "no exit code (did not start or was killed)".into(),
        }
    }
}

/// What a cell's run left: step records, journal checks, the journal, evidence files.
type Driven = (
    Vec<StepRecord>,
    Vec<CheckRecord>,
    Vec<serde_json::Value>,
    Vec<String>,
);

/// A cell after its fleet started: hosts file and CA, the client's configuration, its
/// daemons, its steps (then the [`Hold`], if any), the daemons stopped, the journal checked.
#[allow(clippy::too_many_arguments)]
async fn drive(
    fleet: &RunningFleet,
    sandbox: &Sandbox,
    client: &ClientUnderTest,
    bin: &Path,
    scenario: &Scenario,
    principals: &Principals,
    host_names: &[String],
    hold: Option<&Hold>,
) -> Result<Driven, String> {
    let journal = fleet.journal();
    let redactor = journal.redactor.clone();
    let setup = &scenario.client;
    let trusted_ca = write_hosts_and_ca(fleet, sandbox, setup)?;
    let authority = |name: &str| fleet.host(name).map(|h| h.authority());
    let resolve = |text: &str| {
        let mut out = text.to_owned();
        for name in host_names {
            if let Some(a) = authority(name) {
                out = out.replace(&format!("{{{name}}}"), &a);
            }
        }
        out
    };
    let files = write_client_config(sandbox, setup, principals, &authority, &resolve)?;
    // Hostnames are unique in a fleet (realm and storage hosts included).
    let registries: Vec<String> = fleet.hosts().iter().map(|h| h.authority()).collect();
    let cell = CellEnv {
        bin,
        sandbox,
        tools: &client.tools,
        registries: &registries,
        mirrors: &files.mirrors,
        ca_file: &trusted_ca,
        credentials: &files.credentials,
        identity_tokens: &files.identity_tokens,
    };
    let env = cell_environment(sandbox, client, bin, &files, &cell);

    let mut daemons = Vec::new();
    let mut daemon_names = Vec::new();
    let mut result = Ok(Vec::new());
    for spec in client.driver.daemons(&cell)? {
        daemon_names.push(spec.name);
        match start_daemon(client, sandbox, spec, &env).await {
            Ok(d) => daemons.push(d),
            Err(e) => {
                result = Err(redactor.redact(&e));
                break;
            }
        }
    }
    if result.is_ok() {
        result = run_steps(
            &scenario.steps,
            client,
            &cell,
            &env,
            principals,
            &resolve,
            &authority,
            &redactor,
            fleet.faults(),
            Duration::from_secs(scenario.timeout),
        )
        .await;
    }
    if let (Ok(steps), Some(hold)) = (&result, hold) {
        hold(steps).await;
    }
    while let Some(d) = daemons.pop() {
        d.stop(Duration::from_secs(10)).await;
    }
    let artifacts = keep_daemon_logs(sandbox, &daemon_names, &redactor);
    let records: Vec<StepRecord> = result?.into_iter().map(|s| s.record).collect();
    let entries = journal.all();
    let mut checks = vec![talked_check(setup, &entries)];
    checks.extend(scenario.expectations.iter().map(|e| check(e, &entries)));
    if scenario
        .rules
        .iter()
        .any(|r| r.get_ref() == "fault-tolerance")
    {
        checks.extend(crate::fault_checks::checks(&entries, &records));
    }
    let journal_json = entries
        .iter()
        .filter_map(|e| serde_json::to_value(e).ok())
        .collect();
    Ok((records, checks, journal_json, artifacts))
}

/// The check every cell has: the client talked to the fake registry — or, when the scenario
/// withholds the fleet's CA, that nothing reached it (a verifying client stops at the
/// handshake; the journal records only requests, which come after it).
fn talked_check(setup: &crate::scenario::ClientSetup, entries: &[Entry]) -> CheckRecord {
    let detail = format!("{} request(s) in the journal", entries.len());
    if setup.untrusted_ca {
        CheckRecord {
            description: "no request reached the registry whose certificate the client does \
                          not trust"
                .into(),
            passed: entries.is_empty(),
            detail,
        }
    } else {
        CheckRecord {
            description: "the client talked to the fake registry".into(),
            passed: !entries.is_empty(),
            detail,
        }
    }
}

/// Principals by name: username (ECR's token user may have none), secret, kind.
type Principals = BTreeMap<String, (Option<String>, String, PrincipalKind)>;

/// The cell's hosts file (every fleet host on its address; a host the scenario calls
/// unreachable on an address nothing listens on) and its CA bundle: the fleet's CA, or a
/// decoy when the scenario withholds it. Returns the CA file the client is told to trust.
/// Names of Docker Hub that no fleet host answers unless a scenario gives them one.
const DOCKER_HUB_ALIASES: &[&str] = &["docker.io", "index.docker.io"];

fn write_hosts_and_ca(
    fleet: &RunningFleet,
    sandbox: &Sandbox,
    setup: &crate::scenario::ClientSetup,
) -> Result<PathBuf, String> {
    let blocked: Vec<&str> = setup
        .unreachable
        .iter()
        .filter_map(|n| fleet.host(n.get_ref()).map(|h| h.hostname.as_str()))
        .collect();
    let mut hosts: Vec<(String, std::net::IpAddr)> = fleet
        .hosts()
        .iter()
        .map(|h| {
            let ip = if blocked.contains(&h.hostname.as_str()) {
                std::net::IpAddr::V4(UNREACHABLE)
            } else {
                h.addr.ip()
            };
            (h.hostname.clone(), ip)
        })
        .collect();
    // Docker Hub's other names (`docker.io/…` references; go-containerregistry talks to
    // index.docker.io): on the unreachable address unless the fleet serves them, so a client
    // that contacts one is refused here and never asks the machine's resolver.
    for name in DOCKER_HUB_ALIASES {
        if !hosts.iter().any(|(h, _)| h.eq_ignore_ascii_case(name)) {
            hosts.push(((*name).to_owned(), std::net::IpAddr::V4(UNREACHABLE)));
        }
    }
    sandbox.write_hosts(&hosts).map_err(|e| e.to_string())?;
    let trusted = if setup.untrusted_ca {
        let decoy = sandbox.root.join("decoy-ca.pem");
        fake_registry::tls::CertificateAuthority::generate(
            "regcompat decoy CA (did not sign the fleet)",
        )
        .and_then(|ca| ca.write_pem(&decoy))
        .map_err(|e| format!("decoy CA: {e}"))?;
        decoy
    } else {
        fleet.ca_pem_path().to_owned()
    };
    sandbox
        .write_ca_bundle(&trusted)
        .map_err(|e| e.to_string())?;
    Ok(trusted)
}

/// What [`write_client_config`] set up for the client.
struct ClientFiles {
    /// The Basic credentials config.json holds, by key (also handed to ctr as `--user`).
    credentials: BTreeMap<String, (String, String)>,
    /// The identity tokens config.json holds, by key (handed to ctr as `--refresh`).
    identity_tokens: BTreeMap<String, String>,
    mirrors: Vec<Mirror>,
    /// The harness credential helper's stores.
    store_file: PathBuf,
    ecr_login_store_file: PathBuf,
    /// Put first on the clients' PATH: the helper binaries, when the scenario uses them.
    helper_dir: PathBuf,
}

/// config.json as the scenario says (auths, identity tokens, empty entries, verbatim keys,
/// credsStore, credHelpers), the credential helper's stores and binaries, the mirrors.
fn write_client_config(
    sandbox: &Sandbox,
    setup: &crate::scenario::ClientSetup,
    principals: &Principals,
    authority: &dyn Fn(&str) -> Option<String>,
    resolve: &dyn Fn(&str) -> String,
) -> Result<ClientFiles, String> {
    let b64 = |s: String| base64::engine::general_purpose::STANDARD.encode(s);
    // A principal's username and secret (the username may be empty: ECR's token user…).
    let basic = |principal: &toml::Spanned<String>| -> Result<(String, String), String> {
        let (user, secret, _) = principals
            .get(principal.get_ref())
            .ok_or("unknown principal")?;
        Ok((user.clone().unwrap_or_default(), secret.clone()))
    };
    let basic_entry = |(user, secret): &(String, String)| serde_json::json!({ "auth": b64(format!("{user}:{secret}")) });
    let mut credentials = BTreeMap::new();
    for (host, principal) in &setup.auths {
        credentials.insert(authority(host).ok_or("unknown host")?, basic(principal)?);
    }
    let mut auths = serde_json::Map::new();
    for (key, credential) in &credentials {
        auths.insert(key.clone(), basic_entry(credential));
    }
    let mut identity_tokens = BTreeMap::new();
    for (host, principal) in &setup.identity_tokens {
        let (_, secret) = basic(principal)?;
        let key = authority(host).ok_or("unknown host")?;
        auths.insert(
            key.clone(),
            serde_json::json!({ "auth": b64(format!("{NULL_GUID}:")), "identitytoken": secret }),
        );
        identity_tokens.insert(key, secret);
    }
    for host in &setup.empty_auths {
        let key = authority(host.get_ref()).ok_or("unknown host")?;
        auths.insert(key, serde_json::json!({}));
    }
    for (key, principal) in &setup.auths_by_key {
        let (key, credential) = (resolve(key), basic(principal)?);
        auths.insert(key.clone(), basic_entry(&credential));
        credentials.insert(key, credential);
    }
    let mut mirrors = Vec::new();
    for (upstream, list) in &setup.mirrors {
        for m in list {
            let (name, path) = m.get_ref().split_once('/').unwrap_or((m.get_ref(), ""));
            mirrors.push(Mirror {
                upstream: authority(upstream).ok_or("unknown host")?,
                mirror: authority(name).ok_or("unknown host")?,
                path: path.to_owned(),
            });
        }
    }
    let mut config = serde_json::json!({ "auths": auths });
    if let Some(store) = &setup.creds_store {
        config["credsStore"] = serde_json::json!(store);
    }
    if !setup.cred_helpers.is_empty() {
        let mut helpers = serde_json::Map::new();
        for (host, helper) in &setup.cred_helpers {
            let key = authority(host).ok_or("unknown host")?;
            helpers.insert(key, serde_json::json!(helper.get_ref()));
        }
        config["credHelpers"] = serde_json::Value::Object(helpers);
    }
    // The harness's credential helper: its stores (keyed by the host's authority, exactly
    // as `docker login` stores through a helper), and the binary on the clients' PATH.
    let helper_store = |credentials: &BTreeMap<String, toml::Spanned<String>>,
                        file: &str|
     -> Result<PathBuf, String> {
        let mut store = crate::credhelper::Store::new();
        for (host, principal) in credentials {
            let (username, secret) = basic(principal)?;
            let key = authority(host).ok_or("unknown host")?;
            store.insert(
                key.clone(),
                crate::credhelper::Credential {
                    server_url: key,
                    username,
                    secret,
                },
            );
        }
        let path = sandbox.root.join(file);
        crate::credhelper::save(&path, &store).map_err(|e| e.to_string())?;
        Ok(path)
    };
    let store_file = helper_store(&setup.helper_credentials, "credhelper.json")?;
    crate::credhelper::save_lookup(&store_file, setup.helper_lookup).map_err(|e| e.to_string())?;
    let ecr_login_store_file =
        helper_store(&setup.ecr_login_credentials, "credhelper-ecr-login.json")?;
    let helper_dir = sandbox.root.join("bin");
    let uses_helper =
        setup.creds_store.is_some() || !setup.cred_helpers.is_empty() || setup.ecr_login_helper;
    if uses_helper {
        let helper = std::env::var_os(CREDHELPER_BIN_ENV)
            .map(PathBuf::from)
            .filter(|p| p.is_file())
            .ok_or_else(|| {
                format!(
                    "the scenario uses a credential helper but {CREDHELPER_BIN_ENV} does not name \
                     the built docker-credential-regcompat"
                )
            })?;
        std::fs::create_dir_all(&helper_dir).map_err(|e| e.to_string())?;
        std::fs::copy(&helper, helper_dir.join("docker-credential-regcompat"))
            .map_err(|e| e.to_string())?;
        // The helper Jib infers for `*.amazonaws.com` registries: the same store.
        if setup.ecr_login_helper {
            std::fs::copy(&helper, helper_dir.join("docker-credential-ecr-login"))
                .map_err(|e| e.to_string())?;
        }
    }
    sandbox
        .write(
            &sandbox.docker_config.join("config.json"),
            config.to_string().as_bytes(),
        )
        .map_err(|e| e.to_string())?;
    Ok(ClientFiles {
        credentials,
        identity_tokens,
        mirrors,
        store_file,
        ecr_login_store_file,
        helper_dir,
    })
}

/// The environment of every process of the cell: the sandbox's, `PATH` with the helper,
/// the client's and its tools' directories first, the helper stores, the driver's own.
fn cell_environment(
    sandbox: &Sandbox,
    client: &ClientUnderTest,
    bin: &Path,
    files: &ClientFiles,
    cell: &CellEnv<'_>,
) -> Vec<(String, String)> {
    let mut env = sandbox.env();
    for (k, v) in env.iter_mut() {
        if k == "PATH" {
            let mut dirs = vec![files.helper_dir.clone()];
            dirs.extend(bin.parent().map(Path::to_path_buf));
            dirs.extend(client.tools.iter().cloned());
            let dirs: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
            *v = format!("{}:{v}", dirs.join(":"));
        }
    }
    env.push((
        crate::credhelper::STORE_ENV.into(),
        files.store_file.display().to_string(),
    ));
    env.push((
        crate::credhelper::ECR_LOGIN_STORE_ENV.into(),
        files.ecr_login_store_file.display().to_string(),
    ));
    env.extend(client.driver.env(cell));
    env
}

#[allow(clippy::too_many_arguments)]
async fn run_steps(
    steps: &[crate::scenario::Step],
    client: &ClientUnderTest,
    cell: &CellEnv<'_>,
    env: &[(String, String)],
    principals: &Principals,
    resolve: &(dyn Fn(&str) -> String + Sync),
    authority: &(dyn Fn(&str) -> Option<String> + Sync),
    redactor: &Redactor,
    faults: &Faults,
    timeout: Duration,
) -> Result<Vec<LiveStep>, String> {
    let env = env.to_vec();
    let sandbox = cell.sandbox;
    let mut records = Vec::new();
    let mut commands_run = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let action = resolve_action(i, step, sandbox, principals, resolve, authority, redactor)?;
        let step_faults = install_step_faults(faults, i, step)?;
        client.driver.prepare(cell, &action)?;
        let commands = client.driver.commands(cell, &action);
        let expected = match step.expect {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Any => "any",
        };
        // The driver's leading preparation commands (a local `docker import` before a push)
        // must succeed; the action's own commands run until one fails, and the last one run
        // carries the step's expectation.
        let preparation = client.driver.preparation(&action);
        let binds = client.driver.binds(cell);
        let first = records.len();
        for (n, argv) in commands.into_iter().enumerate() {
            let invocation = Invocation {
                argv,
                env: env.clone(),
                cwd: sandbox.work.clone(),
                hosts_file: Some(sandbox.hosts_file.clone()),
                binds: binds.clone(),
                netns: sandbox.netns.clone(),
                timeout,
            };
            let finished = invocation.run().await;
            let mut stderr = finished.stderr;
            if let Some(why) = &finished.spawn_error {
                stderr = format!("{why}\n{stderr}");
            }
            let ok = finished.exit_code == Some(0);
            commands_run.push(invocation.repro());
            records.push(StepRecord {
                step: i,
                action: step.action.as_str().into(),
                argv: invocation.argv.iter().map(|a| redactor.redact(a)).collect(),
                repro: redactor.redact(&invocation.repro()),
                exit_code: finished.exit_code,
                timed_out: finished.timed_out,
                duration_ms: finished.duration.as_millis() as u64,
                stdout_tail: redactor.redact(&finished.stdout),
                stderr_tail: redactor.redact(&stderr),
                expected: "success".into(),
                preparation: n < preparation,
            });
            if !ok {
                break;
            }
        }
        for id in &step_faults {
            faults.remove(id);
        }
        if let Some(last) = records.get_mut(first..).and_then(|r| r.last_mut())
            && !last.preparation
        {
            last.expected = expected.into();
        }
    }
    Ok(records
        .into_iter()
        .zip(commands_run)
        .map(|(record, command)| LiveStep { record, command })
        .collect())
}

/// A step's abstract action with its references resolved and its local inputs written (the
/// build context, the image to push).
fn resolve_action(
    i: usize,
    step: &crate::scenario::Step,
    sandbox: &Sandbox,
    principals: &Principals,
    resolve: &(dyn Fn(&str) -> String + Sync),
    authority: &(dyn Fn(&str) -> Option<String> + Sync),
    redactor: &Redactor,
) -> Result<ResolvedAction, String> {
    Ok(match step.action {
        Action::Login => {
            let registry = step.registry.as_ref().ok_or("login needs registry")?;
            let principal = step.principal.as_ref().ok_or("login needs principal")?;
            let (user, secret, _) = principals
                .get(principal.get_ref())
                .ok_or("unknown principal")?;
            let password = step.password.clone().unwrap_or_else(|| secret.clone());
            redactor.add(&password, "a password given to login");
            ResolvedAction::Login {
                registry: authority(registry.get_ref()).ok_or("unknown host")?,
                username: user.clone().unwrap_or_default(),
                password,
            }
        }
        Action::Pull => {
            let image = resolve(step.image.as_ref().ok_or("pull needs image")?.get_ref());
            ResolvedAction::Pull {
                context: build_context(&sandbox.work.join(format!("pull-{i}")), &image)?,
                image,
            }
        }
        Action::BuildFrom => {
            let base = resolve(
                step.image
                    .as_ref()
                    .ok_or("build-from needs image")?
                    .get_ref(),
            );
            ResolvedAction::BuildFrom {
                context: build_context(&sandbox.work.join(format!("build-{i}")), &base)?,
                base,
                to: step.to.as_ref().map(|t| resolve(t.get_ref())),
                platforms: step.platforms.clone(),
            }
        }
        Action::Push => {
            let format = match step.format.as_deref() {
                Some("docker") => Format::Docker,
                _ => Format::Oci,
            };
            let layout = sandbox.work.join(format!("push-{i}"));
            let image =
                fixtures::generate(&ImageSpec::single(format, &[2048]).with_seed(1000 + i as u64))
                    .map_err(|e| e.to_string())?;
            write_oci_layout(&layout, &image)?;
            let layer = sandbox.work.join(format!("push-{i}-layer.tar.gz"));
            let layer_blob = image
                .blobs
                .iter()
                .find(|b| b.media_type.contains("layer") || b.media_type.contains("rootfs"))
                .ok_or("the generated image has no layer")?;
            std::fs::write(&layer, &layer_blob.bytes).map_err(|e| e.to_string())?;
            ResolvedAction::Push {
                context: build_context(&sandbox.work.join(format!("push-{i}-context")), "scratch")?,
                layout,
                layer,
                to: resolve(step.to.as_ref().ok_or("push needs to")?.get_ref()),
            }
        }
        Action::Copy => ResolvedAction::Copy {
            from: resolve(step.image.as_ref().ok_or("copy needs image")?.get_ref()),
            to: resolve(step.to.as_ref().ok_or("copy needs to")?.get_ref()),
        },
        Action::BuilderCreate => {
            let dir = sandbox.work.join(format!("builder-{i}"));
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            let field = |v: &Option<toml::Spanned<String>>, name: &str| {
                v.as_ref()
                    .map(|v| resolve(v.get_ref()))
                    .ok_or(format!("builder-create needs {name}"))
            };
            ResolvedAction::BuilderCreate {
                dir,
                build_image: field(&step.image, "image")?,
                run_image: field(&step.run_image, "run_image")?,
                to: field(&step.to, "to")?,
                publish: step.publish.unwrap_or(true),
            }
        }
        Action::AppBuild => {
            let dir = sandbox.work.join(format!("app-{i}"));
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            // The app's source: one file, so the export has an app layer of its own.
            std::fs::write(dir.join("hello.txt"), "built by regcompat\n")
                .map_err(|e| format!("{}: {e}", dir.display()))?;
            let field = |v: &Option<toml::Spanned<String>>, name: &str| {
                v.as_ref()
                    .map(|v| resolve(v.get_ref()))
                    .ok_or(format!("app-build needs {name}"))
            };
            ResolvedAction::AppBuild {
                dir,
                builder: field(&step.image, "image")?,
                run_image: field(&step.run_image, "run_image")?,
                to: field(&step.to, "to")?,
                publish: step.publish.unwrap_or(true),
            }
        }
    })
}

/// Adds a step's `[[step.fault]]` rules to the fleet's fault engine (ids `step<i>-<n>` unless
/// the rule names one) and returns their ids, to remove when the step ends.
fn install_step_faults(
    faults: &Faults,
    i: usize,
    step: &crate::scenario::Step,
) -> Result<Vec<String>, String> {
    step.faults
        .iter()
        .enumerate()
        .map(|(n, rule)| {
            let mut rule = rule.get_ref().clone();
            rule.id.get_or_insert_with(|| format!("step{i}-{n}"));
            faults
                .add(rule)
                .map_err(|e| format!("step[{i}].fault[{n}]: {e}"))
        })
        .collect()
}

/// Starts one daemon of the cell in the cell's isolation and waits (bounded) until it
/// answers; its log is `<sandbox>/<name>.log`.
async fn start_daemon(
    client: &ClientUnderTest,
    sandbox: &Sandbox,
    spec: DaemonSpec,
    env: &[(String, String)],
) -> Result<crate::process::Daemon, String> {
    let invocation =
        |argv: Vec<String>, binds: Vec<(PathBuf, PathBuf)>, timeout: Duration| Invocation {
            argv,
            env: env.to_vec(),
            cwd: sandbox.work.clone(),
            hosts_file: Some(sandbox.hosts_file.clone()),
            binds,
            netns: sandbox.netns.clone(),
            timeout,
        };
    let mut daemon = invocation(spec.argv, spec.binds, Duration::from_secs(0))
        .spawn_daemon(&sandbox.root.join(format!("{}.log", spec.name)))?;
    let ready = invocation(spec.ready, vec![], Duration::from_secs(10));
    for _ in 0..120 {
        if !daemon.alive() {
            let tail = daemon.log_tail(2000);
            return Err(format!(
                "{}: {} exited at start: {tail}",
                client.id, spec.name
            ));
        }
        if ready.run().await.exit_code == Some(0) {
            return Ok(daemon);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let tail = daemon.log_tail(2000);
    daemon.stop(Duration::from_secs(5)).await;
    Err(format!(
        "{}: {} not ready after 60 s: {tail}",
        client.id, spec.name
    ))
}

/// Largest part of a daemon log kept as evidence (its end).
const DAEMON_LOG_KEPT: usize = 256 * 1024;

/// Copies the cell's daemon logs, redacted and cut to their last [`DAEMON_LOG_KEPT`] bytes,
/// to `<scratch>/artifacts/<cell>/<daemon>.log` (the sandbox is deleted after the cell);
/// returns their paths relative to `<scratch>`, which the report writer keeps beside the
/// report.
fn keep_daemon_logs(sandbox: &Sandbox, names: &[&str], redactor: &Redactor) -> Vec<String> {
    let (Some(scratch), Some(cell)) = (sandbox.root.parent(), sandbox.root.file_name()) else {
        return Vec::new();
    };
    let dir = Path::new("artifacts").join(cell);
    let mut kept = Vec::new();
    for name in names {
        let Ok(bytes) = std::fs::read(sandbox.root.join(format!("{name}.log"))) else {
            continue;
        };
        let tail = &bytes[bytes.len().saturating_sub(DAEMON_LOG_KEPT)..];
        let text = redactor.redact(&String::from_utf8_lossy(tail));
        let rel = dir.join(format!("{name}.log"));
        if std::fs::create_dir_all(scratch.join(&dir)).is_ok()
            && std::fs::write(scratch.join(&rel), text).is_ok()
        {
            kept.push(rel.display().to_string());
        }
    }
    kept
}

/// A build context: a Dockerfile `FROM <base>` + `COPY` of one small file (no `RUN`, so no
/// container ever runs).
fn build_context(dir: &Path, base: &str) -> Result<PathBuf, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).map_err(|e| format!("{}: {e}", dir.display()))
    };
    write(
        "Dockerfile",
        &format!("FROM {base}\nCOPY regcompat.txt /regcompat.txt\n"),
    )?;
    write("regcompat.txt", "built by regcompat\n")?;
    Ok(dir.to_owned())
}

/// One journal assertion against the cell's journal.
pub fn check(e: &crate::scenario::Expectation, entries: &[Entry]) -> CheckRecord {
    if e.no_leaks {
        let leaks: Vec<String> = entries
            .iter()
            .filter_map(|x| x.leak.as_ref().map(|l| format!("#{} {l}", x.seq)))
            .collect();
        return CheckRecord {
            description: e.what.clone(),
            passed: leaks.is_empty(),
            detail: if leaks.is_empty() {
                "no request presented another registry's credential".into()
            } else {
                leaks.join("; ")
            },
        };
    }
    let matching: Vec<&Entry> = entries.iter().filter(|x| e.matches(x)).collect();
    let count = Count::parse(e.count.get_ref()).unwrap_or(Count::AtLeast(1));
    let seqs: Vec<String> = matching
        .iter()
        .take(8)
        .map(|x| format!("#{} {} {} → {}", x.seq, x.method, x.path, x.status))
        .collect();
    CheckRecord {
        description: e.what.clone(),
        passed: count.holds(matching.len()),
        detail: format!(
            "{} matching request(s), wanted {}{}",
            matching.len(),
            e.count.get_ref(),
            if seqs.is_empty() {
                String::new()
            } else {
                format!(": {}", seqs.join(", "))
            }
        ),
    }
}

/// Writes `image` as an OCI image layout (the format `crane push` and `skopeo copy oci:`
/// read).
pub fn write_oci_layout(dir: &Path, image: &Image) -> Result<(), String> {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).map_err(|e| e.to_string())?;
    let write = |path: PathBuf, data: &[u8]| std::fs::write(&path, data).map_err(|e| e.to_string());
    write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    for b in &image.blobs {
        write(blobs.join(b.digest.hex()), &b.bytes)?;
    }
    for m in &image.manifests {
        write(blobs.join(m.digest.hex()), &m.bytes)?;
    }
    let top = image.top();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": top.media_type,
            "digest": top.digest.to_string(),
            "size": top.bytes.len(),
            "annotations": { "org.opencontainers.image.ref.name": "latest" }
        }]
    });
    write(dir.join("index.json"), index.to_string().as_bytes())
}

#[cfg(test)]
mod tests {
    use super::client_error_line;

    #[test]
    fn the_client_error_line_skips_stack_traces() {
        let stderr = "#2 resolve\nerror: failed to solve: failed to fetch anonymous token: 403 Forbidden\n\
                      1234 v0.32.2 buildctl build\ngithub.com/moby/buildkit/client.(*Client).solve.func2\n\
                      \tgithub.com/moby/buildkit/client/solve.go:339\n";
        assert_eq!(
            client_error_line(stderr).as_deref(),
            Some("error: failed to solve: failed to fetch anonymous token: 403 Forbidden")
        );
        assert_eq!(client_error_line("all good\n"), None);
    }

    #[test]
    fn maven_s_goal_failure_and_skopeo_s_fatal_line_are_quoted() {
        let maven = "\u{1b}[0m[INFO] BUILD FAILURE\n[ERROR] Failed to execute goal com.google.cloud.tools:jib-maven-plugin:3.2.0:build (default-cli) on project jibapp: Build image failed: Unauthorized for ecr/openjdk: 401 Unauthorized\nCaused by: x: 401\n[ERROR] \n[ERROR] Re-run Maven using the -X switch to enable full debug logging.\n[ERROR] [Help 1] http://cwiki.apache.org/confluence/display/MAVEN/MojoExecutionException\n\u{1b}[0m";
        assert_eq!(
            client_error_line(maven).as_deref(),
            Some("[ERROR] Build image failed: Unauthorized for ecr/openjdk: 401 Unauthorized")
        );
        let skopeo = "time=\"2026-11-30T10:20:42Z\" level=fatal msg=\"initializing source docker://r/base/run:1: unable to retrieve auth token: invalid username/password: unauthorized: authentication required\"\n";
        let line = client_error_line(skopeo).unwrap();
        assert!(line.contains("level=fatal"), "{line}");
        assert!(line.ends_with("authentication required\""), "{line}");
        let nerdctl = "error: failed to solve: failed to fetch anonymous token: unexpected status from GET request to https://d/jwt/auth: 403 Forbidden\ntime=\"x\" level=fatal msg=\"no image was built\"\n";
        assert!(
            client_error_line(nerdctl)
                .unwrap()
                .ends_with("403 Forbidden")
        );
    }
}
