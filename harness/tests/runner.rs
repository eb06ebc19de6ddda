//! The runner itself: malformed scenarios are refused with file, line and field; a hanging
//! client is killed with its whole process group; nothing a cell starts outlives it; two
//! cells in parallel see only their own hosts file and config; the hosts guard holds.

use harness::clients::{CellEnv, DaemonSpec, Driver, ResolvedAction};
use harness::process::Invocation;
use harness::runner::{ClientUnderTest, run_cell};
use harness::sandbox::Sandbox;
use harness::scenario::{Action, Scenario};
use reports::Verdict;
use rstest::rstest;
use std::path::{Path, PathBuf};
use std::time::Duration;

const HOST: &str = "title = \"t\"\n[[host]]\nname = \"reg\"\nhostname = \"registry.example.com\"\n[host.profile]\nkind = \"open\"\n";

#[rstest]
#[case::no_steps(HOST, 1, "", "missing field `step`")]
#[case::unknown_action(
    &format!("{HOST}[[step]]\naction = \"build\"\nexpect = \"success\"\n"),
    8, "step[0].action", "unknown variant `build`"
)]
#[case::missing_expect(
    &format!("{HOST}[[step]]\naction = \"pull\"\nimage = \"{{reg}}/a:1\"\n"),
    7, "step[0]", "missing field `expect`"
)]
#[case::pull_without_image(
    &format!("{HOST}[[step]]\naction = \"pull\"\nexpect = \"success\"\n"),
    7, "step[0].image", "needs `image`"
)]
#[case::app_build_without_run_image(
    &format!("{HOST}[[step]]\naction = \"app-build\"\nimage = \"{{reg}}/b:1\"\nto = \"{{reg}}/app:1\"\nexpect = \"success\"\n"),
    7, "step[0].run_image", "needs `run_image`"
)]
#[case::seed_file_with_two_contents(
    "title = \"t\"\n[[host]]\nname = \"reg\"\nhostname = \"registry.example.com\"\n[host.profile]\nkind = \"open\"\n[[host.seed]]\nrepository = \"a\"\ntag = \"1\"\nfiles = [{ path = \"bin/sh\", link = \"busybox\", text = \"x\" }]\n[[step]]\naction = \"pull\"\nimage = \"{reg}/a:1\"\nexpect = \"success\"\n",
    10,
    "host[0].seed[0].files[0].path",
    "exactly one of"
)]
#[case::placeholder_of_no_host(
    &format!("{HOST}[[step]]\naction = \"pull\"\nimage = \"{{acr}}/a:1\"\nexpect = \"success\"\n"),
    9, "step[0].image", "{acr} names no host"
)]
#[case::unknown_principal_in_auths(
    &format!("{HOST}[client]\nauths = {{ reg = \"nobody\" }}\n[[step]]\naction = \"pull\"\nimage = \"{{reg}}/a:1\"\nexpect = \"success\"\n"),
    8, "client.auths.reg", "no principal is named"
)]
#[case::address_chosen_by_scenario(
    "title = \"t\"\n[[host]]\nname = \"reg\"\nhostname = \"registry.example.com\"\naddress = \"127.0.0.5\"\n[host.profile]\nkind = \"open\"\n[[step]]\naction = \"pull\"\nimage = \"{reg}/a:1\"\nexpect = \"success\"\n",
    5,
    "host[0].address",
    "does not choose addresses"
)]
#[case::bad_count(
    &format!("{HOST}[[step]]\naction = \"pull\"\nimage = \"{{reg}}/a:1\"\nexpect = \"success\"\n[[expect]]\nwhat = \"x\"\ncount = \"many\"\n"),
    13, "expect[0].count", "not a number"
)]
#[case::unknown_key(
    &format!("{HOST}[[step]]\naction = \"pull\"\nimage = \"{{reg}}/a:1\"\nexpect = \"success\"\nretries = 3\n"),
    11, "step[0].retries", "unknown field `retries`"
)]
#[case::non_loopback_host_address_in_fleet_part(
    "title = \"t\"\n[[host]]\nname = \"reg\"\nhostname = \"10.1.2.3\"\n[host.profile]\nkind = \"open\"\n[[step]]\naction = \"pull\"\nimage = \"{reg}/a:1\"\nexpect = \"success\"\n",
    4,
    "host[0].hostname",
    "not a DNS hostname"
)]
fn malformed_scenarios_name_line_and_field(
    #[case] text: &str,
    #[case] line: usize,
    #[case] field: &str,
    #[case] message: &str,
) {
    let e = Scenario::parse(text, "scenarios/x.toml").expect_err("refused");
    let shown = e.to_string();
    assert!(shown.starts_with("scenarios/x.toml:"), "{shown}");
    assert_eq!((e.line, e.field.as_str()), (line, field), "{shown}");
    assert!(e.message.contains(message), "{shown}");
}

#[test]
fn every_scenario_in_the_repository_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "toml") {
            let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
            // docs/verdicts.md: every scenario names the rule(s) it tests and their source.
            assert!(!s.rules.is_empty(), "{}: names no rule", s.id);
            assert!(!s.sources.is_empty(), "{}: names no source", s.id);
            // A fault variant sits in its base's resilience column, as its cells sit on its
            // row (only fault-tolerance scenarios have resilience columns).
            let tests_faults = s.rules.iter().any(|r| r.get_ref() == "fault-tolerance");
            if let Some(base) = s.variant_of.as_ref().filter(|_| tests_faults) {
                let base = Scenario::load(&dir.join(format!("{}.toml", base.get_ref()))).unwrap();
                let column = |s: &Scenario| s.fault_kind.clone().unwrap_or(s.id.clone());
                assert_eq!(column(&s), column(&base), "{}: fault_kind", s.id);
            }
            n += 1;
        }
    }
    assert!(n >= 20, "only {n} scenarios");
}

/// A scenario that pins `tag@sha256:…` must pin a manifest its own seeds generate (fixtures
/// are deterministic, so the digest is stable; this catches a seed edited without its pin).
#[test]
fn every_digest_pin_names_a_seeded_manifest() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|x| x != "toml") {
            continue;
        }
        let s = Scenario::load(&path).unwrap();
        let pins: Vec<String> = s
            .steps
            .iter()
            .flat_map(|st| [&st.image, &st.to, &st.run_image])
            .flatten()
            .filter_map(|r| r.get_ref().split_once('@').map(|(_, d)| d.to_owned()))
            .collect();
        if pins.is_empty() {
            continue;
        }
        let hosts = fake_registry::config::FleetConfig::from_hosts(s.hosts)
            .into_hosts(0)
            .unwrap();
        let seeded: Vec<String> = hosts
            .iter()
            .flat_map(|h| h.seeds.iter())
            .flat_map(|(repo, tag, image)| {
                image
                    .manifests
                    .iter()
                    .map(move |m| format!("{repo}:{tag} {}", m.digest))
            })
            .collect();
        for pin in pins {
            assert!(
                seeded.iter().any(|x| x.ends_with(&pin)),
                "{}: {pin} is not seeded; seeded: {seeded:#?}",
                path.display()
            );
        }
    }
}

/// Processes whose environment carries `marker` (set on every process a test starts).
fn processes_with(marker: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(env) = std::fs::read(format!("/proc/{pid}/environ"))
            && env.split(|b| *b == 0).any(|kv| kv == marker.as_bytes())
        {
            found.push(pid);
        }
    }
    found
}

#[tokio::test]
async fn a_hanging_client_is_killed_with_its_whole_group() {
    let marker = format!("REGCOMPAT_TEST_MARKER=hang-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    // The "client" starts a grandchild in the background, then hangs itself.
    let inv = Invocation {
        argv: vec![
            "/bin/sh".into(),
            "-c".into(),
            "sleep 1000 & sleep 1000".into(),
        ],
        env: vec![(
            marker.split_once('=').unwrap().0.into(),
            marker.split_once('=').unwrap().1.into(),
        )],
        cwd: dir.path().to_owned(),
        hosts_file: None,
        netns: None,
        binds: vec![],
        timeout: Duration::from_millis(500),
    };
    let finished = inv.run().await;
    assert!(finished.timed_out);
    assert_eq!(finished.exit_code, None);
    // Reaping may lag a moment behind the kill; bounded wait.
    for _ in 0..50 {
        if processes_with(&marker).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(processes_with(&marker), Vec::<u32>::new(), "leftovers");
}

#[tokio::test]
async fn a_background_process_of_a_finished_client_does_not_outlive_it() {
    let marker = format!("REGCOMPAT_TEST_MARKER=bg-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let inv = Invocation {
        argv: vec!["/bin/sh".into(), "-c".into(), "sleep 1000 & exit 0".into()],
        env: vec![(
            marker.split_once('=').unwrap().0.into(),
            marker.split_once('=').unwrap().1.into(),
        )],
        cwd: dir.path().to_owned(),
        hosts_file: None,
        netns: None,
        binds: vec![],
        timeout: Duration::from_secs(30),
    };
    let finished = inv.run().await;
    assert_eq!(finished.exit_code, Some(0));
    for _ in 0..50 {
        if processes_with(&marker).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(processes_with(&marker), Vec::<u32>::new(), "leftovers");
}

#[tokio::test]
async fn the_hosts_file_is_bound_over_etc_hosts_for_the_client_only() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::create(dir.path()).unwrap();
    sandbox
        .write_hosts(&[("only.in.this.cell".into(), "127.0.77.2".parse().unwrap())])
        .unwrap();
    let inv = Invocation {
        argv: vec!["/bin/cat".into(), "/etc/hosts".into()],
        env: sandbox.env(),
        cwd: sandbox.work.clone(),
        hosts_file: Some(sandbox.hosts_file.clone()),
        netns: None,
        binds: vec![],
        timeout: Duration::from_secs(10),
    };
    let finished = inv.run().await;
    assert_eq!(finished.exit_code, Some(0), "{}", finished.stderr);
    assert!(finished.stdout.contains("127.0.77.2\tonly.in.this.cell"));
    let machine = std::fs::read_to_string("/etc/hosts").unwrap();
    // The sockets directory lives outside `dir` (socket paths are short): no leftover.
    sandbox.remove();
    assert!(!sandbox.sockets.exists());
    assert!(
        !machine.contains("only.in.this.cell"),
        "the machine's file is untouched"
    );
}

/// A driver whose "client" prints what it sees: its /etc/hosts and config.json.
struct Peek;

impl Driver for Peek {
    fn name(&self) -> &'static str {
        "peek"
    }
    fn binary(&self) -> &'static str {
        "sh"
    }
    fn supports(&self, action: Action) -> bool {
        action == Action::Pull
    }
    fn commands(&self, cell: &CellEnv, action: &ResolvedAction) -> Vec<Vec<String>> {
        let ResolvedAction::Pull { image, .. } = action else {
            return vec![];
        };
        vec![vec![
            cell.bin(),
            "-c".into(),
            format!(
                "echo IMAGE={image}; cat /etc/hosts; cat \"$DOCKER_CONFIG/config.json\"; \
                 exec {curl} -sS -o /dev/null --cacert \"$SSL_CERT_FILE\" https://{host}/v2/",
                curl = "curl",
                host = image.split('/').next().unwrap_or("")
            ),
        ]]
    }
}

fn scenario(dir: &Path, name: &str, hostname: &str, user: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            "title = \"{name}\"\n[[host]]\nname = \"reg\"\nhostname = \"{hostname}\"\n[host.profile]\nkind = \"bearer\"\n[[host.principal]]\nname = \"{user}\"\nkind = \"user\"\nusername = \"{user}\"\nsecret = \"{user}-S3cret-value\"\ngrants = [\"**:pull\"]\n[client]\nauths = {{ reg = \"{user}\" }}\n[[step]]\naction = \"pull\"\nimage = \"{{reg}}/a:1\"\nexpect = \"success\"\n"
        ),
    )
    .unwrap();
    path
}

#[tokio::test]
async fn two_cells_in_parallel_see_only_their_own_hosts_and_config() {
    if !Path::new("/usr/bin/curl").exists() {
        panic!("this test needs /usr/bin/curl");
    }
    let dir = tempfile::tempdir().unwrap();
    let a = scenario(dir.path(), "cell-a", "a.example.com", "alice");
    let b = scenario(dir.path(), "cell-b", "b.example.com", "bob");
    let client = |id: &str| ClientUnderTest {
        id: id.into(),
        driver: Box::new(Peek),
        binary: Ok(PathBuf::from("/bin/sh")),
        tools: vec![],
    };
    let (ca, cb) = (client("peek@1"), client("peek@1"));
    let scratch = dir.path().join("scratch");
    let (cell_a, cell_b) = tokio::join!(
        run_cell(&a, &ca, 900, &scratch),
        run_cell(&b, &cb, 901, &scratch)
    );
    for (cell, mine, other, user, other_user) in [
        (&cell_a, "a.example.com", "b.example.com", "alice", "bob"),
        (&cell_b, "b.example.com", "a.example.com", "bob", "alice"),
    ] {
        assert_eq!(cell.verdict, Verdict::Pass, "{cell:#?}");
        let out = &cell.steps[0].stdout_tail;
        assert!(out.contains(mine), "{out}");
        assert!(!out.contains(other), "{out}");
        // config.json holds base64(user:secret); the other cell's user is not in it.
        use base64::Engine as _;
        let mine_b64 =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{user}-S3cret-value"));
        let other_b64 = base64::engine::general_purpose::STANDARD
            .encode(format!("{other_user}:{other_user}-S3cret-value"));
        assert!(out.contains(&mine_b64[..8]), "{out}");
        assert!(!out.contains(&other_b64[..8]), "{out}");
        // The client really reached its own registry.
        assert!(!cell.journal.is_empty());
    }
    assert!(!scratch.join("cell-a--peek-1").exists(), "sandbox removed");
}

#[tokio::test]
async fn a_missing_client_is_not_run_never_pass() {
    let dir = tempfile::tempdir().unwrap();
    let a = scenario(dir.path(), "x", "a.example.com", "alice");
    let client = ClientUnderTest {
        id: "ghost@1".into(),
        driver: Box::new(Peek),
        binary: Err("ghost@1 is not installed".into()),
        tools: vec![],
    };
    let cell = run_cell(&a, &client, 902, &dir.path().join("s")).await;
    assert_eq!(cell.verdict, Verdict::NotRun);
    assert!(cell.reason.contains("not installed"));
    assert!(cell.steps.is_empty());
}

#[tokio::test]
async fn a_daemon_is_stopped_with_everything_it_started() {
    let marker = format!("REGCOMPAT_TEST_MARKER=daemon-{}", std::process::id());
    let dir = tempfile::tempdir().unwrap();
    let (k, v) = marker.split_once('=').unwrap();
    let inv = Invocation {
        argv: vec![
            "/bin/sh".into(),
            "-c".into(),
            "sleep 1000 & sleep 1000 & wait".into(),
        ],
        env: vec![(k.into(), v.into())],
        cwd: dir.path().to_owned(),
        hosts_file: None,
        netns: None,
        binds: vec![],
        timeout: Duration::from_secs(0),
    };
    let mut daemon = inv.spawn_daemon(&dir.path().join("d.log")).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(daemon.alive());
    assert!(
        processes_with(&marker).len() >= 3,
        "the daemon and its children run"
    );
    daemon.stop(Duration::from_secs(5)).await;
    for _ in 0..50 {
        if processes_with(&marker).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(processes_with(&marker), Vec::<u32>::new(), "leftovers");
}

/// A client with two daemons: each logs the Basic credential the driver was given (the
/// harness must redact it in the kept log), starts a grandchild, and records its order.
struct TwoDaemons {
    marker: String,
}

impl Driver for TwoDaemons {
    fn name(&self) -> &'static str {
        "two-daemons"
    }
    fn binary(&self) -> &'static str {
        "sh"
    }
    fn supports(&self, action: Action) -> bool {
        action == Action::Pull
    }
    fn commands(&self, cell: &CellEnv, _action: &ResolvedAction) -> Vec<Vec<String>> {
        let mirrors: Vec<String> = cell
            .mirrors
            .iter()
            .map(|m| format!("{}>{}/{}", m.upstream, m.mirror, m.path))
            .collect();
        vec![vec![
            cell.bin(),
            "-c".into(),
            format!(
                "cat /etc/hosts; cat \"$DOCKER_CONFIG/config.json\"; echo; echo 'MIRRORS={}'; \
                 cat {order}",
                mirrors.join(","),
                order = cell.sandbox.root.join("order").display()
            ),
        ]]
    }
    fn daemons(&self, cell: &CellEnv) -> Result<Vec<DaemonSpec>, String> {
        let secret = cell
            .credentials
            .values()
            .next()
            .map(|(_, s)| s.clone())
            .unwrap_or_default();
        let order = cell.sandbox.root.join("order").display().to_string();
        let daemon = |name: &'static str| DaemonSpec {
            name,
            argv: vec![
                "/bin/sh".into(),
                "-c".into(),
                format!(
                    "echo {name} >> {order}; echo \"{name} got password {secret}\"; \
                     set -C; echo {name} > /run/regcompat-bind-test/owner || exit 9; \
                     exec sh -c 'sleep 1000 & wait' {marker}",
                    marker = self.marker
                ),
            ],
            ready: vec!["/bin/true".into()],
            // Both daemons claim the same fixed path; each sees its own directory there.
            binds: vec![(
                cell.sandbox.root.join(format!("{name}-run")),
                PathBuf::from("/run/regcompat-bind-test"),
            )],
        };
        Ok(vec![daemon("first"), daemon("second")])
    }
}

#[tokio::test]
async fn daemons_start_in_order_stop_after_the_cell_and_leave_redacted_logs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mirrored.toml");
    std::fs::write(
        &path,
        r#"title = "two daemons"
[[host]]
name = "up"
hostname = "up.example.com"
[host.profile]
kind = "bearer"
[[host.principal]]
name = "u"
kind = "user"
username = "u"
secret = "u-S3cret-in-a-daemon-log"
grants = ["**:pull"]
[[host]]
name = "mirror"
hostname = "mirror.example.com"
port = 5443
[host.profile]
kind = "open"
[client]
auths_by_key = { "{up}:443" = "u" }
mirrors = { up = ["mirror/proxy"] }
unreachable = ["up"]
[[step]]
action = "pull"
image = "{up}/a:1"
expect = "success"
"#,
    )
    .unwrap();
    let marker = format!("regcompat-two-daemons-{}", std::process::id());
    let client = ClientUnderTest {
        id: "two@1".into(),
        driver: Box::new(TwoDaemons {
            marker: marker.clone(),
        }),
        binary: Ok(PathBuf::from("/bin/sh")),
        tools: vec![],
    };
    let scratch = dir.path().join("scratch");
    let cell = run_cell(&path, &client, 903, &scratch).await;
    let out = &cell.steps[0].stdout_tail;
    // Daemons started in order, before the step.
    assert!(out.contains("first\nsecond"), "{out}");
    // The unreachable host resolves to a loopback address nothing listens on.
    assert!(out.contains("127.255.255.254\tup.example.com"), "{out}");
    assert!(out.contains("\tmirror.example.com"), "{out}");
    // `auths_by_key` wrote the key verbatim, port included.
    assert!(out.contains("\"up.example.com:443\""), "{out}");
    assert!(
        out.contains("MIRRORS=up.example.com>mirror.example.com:5443/proxy"),
        "{out}"
    );
    // The fixed path was private to each daemon: the machine's stays empty.
    assert!(!Path::new("/run/regcompat-bind-test/owner").exists());
    // No daemon (or its child) outlives the cell.
    let ps = std::process::Command::new("pgrep")
        .args(["-f", &marker])
        .output()
        .unwrap();
    assert!(ps.stdout.is_empty(), "left running: {ps:?}");
    // Both logs are kept as evidence, with the secret redacted.
    assert_eq!(cell.artifacts.len(), 2, "{cell:#?}");
    for rel in &cell.artifacts {
        let text = std::fs::read_to_string(scratch.join(rel)).unwrap();
        assert!(text.contains("got password"), "{text}");
        assert!(!text.contains("u-S3cret-in-a-daemon-log"), "{text}");
    }
}

#[tokio::test]
async fn a_mirror_scenario_is_not_applicable_to_a_client_without_mirrors() {
    let cell = run_cell(
        Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../scenarios/mirror-path-prefix.toml"
        )),
        &ClientUnderTest {
            id: "crane@x".into(),
            driver: Box::new(harness::clients::crane::Crane),
            binary: Ok(PathBuf::from("/bin/false")),
            tools: vec![],
        },
        904,
        &tempfile::tempdir().unwrap().path().join("s"),
    )
    .await;
    assert_eq!(cell.verdict, Verdict::NotApplicable, "{cell:#?}");
    assert!(cell.reason.contains("mirror"), "{}", cell.reason);
    assert!(cell.steps.is_empty(), "nothing ran");
}

/// Every recorded known failure names a scenario that exists, a client of clients.toml, and
/// versions that client has pinned (a record nobody can hit is a silent hole in the gate).
#[test]
fn every_known_failure_names_a_scenario_and_a_pinned_client_version() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let known = harness::known::KnownFailures::load(&root.join(harness::known::FILE_NAME))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!known.records.is_empty(), "no known failures recorded");
    let manifest = harness::provision::Manifest::load(root.join("clients.toml")).unwrap();
    let scenarios: Vec<String> = std::fs::read_dir(root.join("scenarios"))
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| harness::runner::stem(&p))
        .collect();
    for r in &known.records {
        let client = r.client.get_ref();
        let spec = manifest
            .client(client)
            .unwrap_or_else(|| panic!("{client}: not a client of clients.toml"));
        assert!(
            scenarios
                .iter()
                .any(|s| harness::scenario::glob(r.scenario.get_ref(), s)),
            "{}: names no scenario",
            r.scenario.get_ref()
        );
        assert!(
            spec.versions.iter().any(|v| r.covers_version(&v.version)),
            "{client} {}: covers no pinned version",
            r.versions.get_ref()
        );
    }
}

fn refclient(mutant: &str) -> ClientUnderTest {
    ClientUnderTest {
        id: format!("refclient@{mutant}"),
        driver: Box::new(harness::clients::refclient::RefClient::new(mutant)),
        binary: Ok(PathBuf::from(env!("CARGO_BIN_EXE_regcompat-refclient"))),
        tools: vec![],
    }
}

/// Runs a repository scenario with a [`Hold`] that pastes the live command of the first
/// step not as expected (else the last) into `sh`, as a user of `cargo xtask repro` does,
/// while the cell's fleet is up. Returns the cell and that command's exit code.
async fn held_and_pasted(
    scenario: &str,
    client: &ClientUnderTest,
    index: usize,
    scratch: &Path,
) -> (reports::Cell, Option<i32>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let hold: harness::runner::Hold = Box::new(move |steps| {
        let step = steps
            .iter()
            .find(|s| !harness::runner::step_met(&s.record))
            .or(steps.last());
        let command = step.map(|s| s.command.clone()).unwrap_or_default();
        let tx = tx.clone();
        Box::pin(async move {
            let status = tokio::process::Command::new("sh")
                .arg("-c")
                .arg(&command)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .await
                .ok()
                .and_then(|s| s.code());
            let _ = tx.send(status);
        })
    });
    let options = harness::runner::CellOptions {
        keep_failed: false,
        hold: Some(hold),
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../scenarios/{scenario}.toml"));
    let cell = harness::runner::run_cell_with(&path, client, index, scratch, &options).await;
    (cell, rx.try_recv().ok().flatten())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_cells_command_pasted_into_a_shell_reproduces_the_step() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = dir.path().join("scratch");
    // A client that looks credentials up case-sensitively fails the uppercase-key pull; the
    // pasted command fails the same way against the same fleet.
    let (cell, pasted) = held_and_pasted(
        "acr-uppercase-key-pull",
        &refclient("case-sensitive-lookup"),
        903,
        &scratch,
    )
    .await;
    assert_eq!(cell.verdict, Verdict::Fail, "{cell:#?}");
    let failing = cell
        .steps
        .iter()
        .find(|s| !harness::runner::step_met(s))
        .expect("a failing step");
    assert_ne!(failing.exit_code, Some(0));
    assert_eq!(pasted, failing.exit_code, "the pasted command's exit code");
    // The correct client's command succeeds when pasted: the command really reaches the
    // live fleet (a torn-down fleet would make it fail too).
    let (cell, pasted) = held_and_pasted(
        "acr-uppercase-key-pull",
        &refclient("correct"),
        904,
        &scratch,
    )
    .await;
    assert_eq!(cell.verdict, Verdict::Pass, "{cell:#?}");
    assert_eq!(pasted, Some(0));
}

#[tokio::test]
async fn keep_failed_keeps_the_sandbox_of_a_failing_cell_only() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = dir.path().join("scratch");
    let options = harness::runner::CellOptions {
        keep_failed: true,
        hold: None,
    };
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/acr-uppercase-key-pull.toml");
    let failing = refclient("case-sensitive-lookup");
    let passing = refclient("correct");
    let (bad, good) = tokio::join!(
        harness::runner::run_cell_with(&path, &failing, 905, &scratch, &options),
        harness::runner::run_cell_with(&path, &passing, 906, &scratch, &options)
    );
    assert_eq!(bad.verdict, Verdict::Fail, "{bad:#?}");
    assert_eq!(good.verdict, Verdict::Pass, "{good:#?}");
    let kept = harness::runner::sandbox_dir(&scratch, &bad.scenario, &bad.client);
    assert!(
        kept.join("home/.docker/config.json").is_file(),
        "{kept:?} kept"
    );
    let kept = harness::sandbox::Sandbox::at(&kept);
    assert!(
        kept.sockets.is_dir(),
        "the kept sandbox keeps its sockets directory"
    );
    kept.remove();
    assert!(
        !harness::runner::sandbox_dir(&scratch, &good.scenario, &good.client).exists(),
        "a passing cell's sandbox is deleted"
    );
}

/// A driver with the actions it is given: each prints its action's name and asks the
/// registry's `/v2/` (so the cell has a journal).
struct Actions(&'static [Action]);

impl Driver for Actions {
    fn name(&self) -> &'static str {
        "actions"
    }
    fn binary(&self) -> &'static str {
        "sh"
    }
    fn supports(&self, action: Action) -> bool {
        self.0.contains(&action)
    }
    fn commands(&self, cell: &CellEnv, action: &ResolvedAction) -> Vec<Vec<String>> {
        let (label, image) = match action {
            ResolvedAction::Pull { image, .. } => ("PULL", image),
            ResolvedAction::Push { to, .. } => ("PUSH", to),
            ResolvedAction::BuilderCreate { build_image, .. } => ("BUILDER", build_image),
            _ => return vec![],
        };
        vec![vec![
            cell.bin(),
            "-c".into(),
            format!(
                "echo {label}; exec curl -sS -o /dev/null --cacert \"$SSL_CERT_FILE\" \
                 https://{}/v2/",
                image.split('/').next().unwrap_or("")
            ),
        ]]
    }
}

const FAMILY_HOST: &str = "[[host]]\nname = \"reg\"\nhostname = \"registry.example.com\"\n[host.profile]\nkind = \"open\"\n[[host.seed]]\nrepository = \"a\"\ntag = \"1\"\n";

/// A family in `dir`: `fam` pulls; its variants `fam-a-builder` (builder-create) and
/// `fam-b-push` (push), tried in that order.
fn family(dir: &Path) -> PathBuf {
    let write = |name: &str, head: &str, step: &str| {
        std::fs::write(
            dir.join(format!("{name}.toml")),
            format!(
                "title = \"{name}\"\nrules = [\"spec-conformance\"]\n{head}{FAMILY_HOST}[[step]]\n{step}expect = \"success\"\n"
            ),
        )
        .unwrap();
    };
    write("fam", "", "action = \"pull\"\nimage = \"{reg}/a:1\"\n");
    write(
        "fam-a-builder",
        "variant_of = \"fam\"\n",
        "action = \"builder-create\"\nimage = \"{reg}/a:1\"\nrun_image = \"{reg}/a:1\"\nto = \"{reg}/b:1\"\n",
    );
    write(
        "fam-b-push",
        "variant_of = \"fam\"\n",
        "action = \"push\"\nto = \"{reg}/c:1\"\n",
    );
    dir.join("fam.toml")
}

/// Distinct ids: a cell's sandbox is named after its row and its client.
fn with_actions(id: &str, actions: &'static [Action]) -> ClientUnderTest {
    ClientUnderTest {
        id: id.into(),
        driver: Box::new(Actions(actions)),
        binary: Ok(PathBuf::from("/bin/sh")),
        tools: vec![],
    }
}

#[test]
fn a_familys_variants_are_the_files_naming_it_in_file_name_order() {
    let dir = tempfile::tempdir().unwrap();
    let base = family(dir.path());
    std::fs::write(dir.path().join("not-toml.toml"), "variant_of = ").unwrap();
    let variants = harness::scenario::variants_of(&base).unwrap();
    let names: Vec<String> = variants.iter().map(|p| harness::runner::stem(p)).collect();
    assert_eq!(names, ["fam-a-builder", "fam-b-push"]);
    assert!(
        harness::scenario::variants_of(&dir.path().join("fam-a-builder.toml"))
            .unwrap()
            .is_empty(),
        "a variant has no variants"
    );
    let v = Scenario::load(&variants[0]).unwrap();
    assert_eq!(
        v.variant_of.as_ref().map(|b| b.get_ref().as_str()),
        Some("fam")
    );
}

#[rstest]
#[case::no_base("variant_of = \"nope\"\n", "no scenario \"nope\"")]
#[case::itself("variant_of = \"v\"\n", "not a variant of itself")]
#[case::base_is_a_variant("variant_of = \"fam-b-push\"\n", "is itself a variant (of \"fam\")")]
#[case::path("variant_of = \"../fam\"\n", "is not a scenario id")]
#[case::other_rules(
    "variant_of = \"fam\"\nrules = [\"spec-conformance\", \"clean-failure\"]\n",
    "differ from its base's"
)]
fn a_bad_variant_of_names_file_line_and_field(#[case] head: &str, #[case] message: &str) {
    let dir = tempfile::tempdir().unwrap();
    family(dir.path());
    let rules = if head.contains("rules") {
        ""
    } else {
        "rules = [\"spec-conformance\"]\n"
    };
    let path = dir.path().join("v.toml");
    std::fs::write(
        &path,
        format!(
            "title = \"v\"\n{rules}{head}{FAMILY_HOST}[[step]]\naction = \"pull\"\nimage = \"{{reg}}/a:1\"\nexpect = \"success\"\n"
        ),
    )
    .unwrap();
    let e = Scenario::load(&path).expect_err("refused");
    let shown = e.to_string();
    assert!(
        shown.starts_with(&format!("{}:", path.display())),
        "{shown}"
    );
    let line = if head.contains("rules") { 2 } else { 3 };
    assert_eq!((e.line, e.field.as_str()), (line, "variant_of"), "{shown}");
    assert!(e.message.contains(message), "{shown}");
}

/// A client that cannot express a family's base runs its first variant it can express, on
/// the base's row; a client that can runs the base; one that can express no member is
/// not applicable, with what the base needs and every variant tried.
#[tokio::test]
async fn each_client_runs_the_first_member_of_a_family_it_can_express() {
    if !Path::new("/usr/bin/curl").exists() {
        panic!("this test needs /usr/bin/curl");
    }
    let dir = tempfile::tempdir().unwrap();
    let base = family(dir.path());
    let scratch = dir.path().join("scratch");
    let (builder, both, push, neither) = (
        with_actions("builder@1", &[Action::BuilderCreate]),
        with_actions("both@1", &[Action::Pull, Action::BuilderCreate]),
        with_actions("push@1", &[Action::Push]),
        with_actions("neither@1", &[Action::Copy]),
    );
    let (builder, both, push, neither) = tokio::join!(
        run_cell(&base, &builder, 910, &scratch),
        run_cell(&base, &both, 911, &scratch),
        run_cell(&base, &push, 912, &scratch),
        run_cell(&base, &neither, 913, &scratch),
    );
    for (cell, variant, printed) in [
        (&builder, Some("fam-a-builder"), "BUILDER"),
        (&both, None, "PULL"),
        (&push, Some("fam-b-push"), "PUSH"),
    ] {
        assert_eq!(cell.verdict, Verdict::Pass, "{cell:#?}");
        assert_eq!(cell.scenario, "fam", "the row is the base's");
        assert_eq!(cell.variant.as_deref(), variant);
        assert_eq!(cell.steps.len(), 1, "{cell:#?}");
        assert!(cell.steps[0].stdout_tail.contains(printed), "{cell:#?}");
        assert!(!cell.journal.is_empty(), "the client reached its registry");
    }
    assert_eq!(neither.verdict, Verdict::NotApplicable, "{neither:#?}");
    assert_eq!(
        (neither.scenario.as_str(), neither.variant.as_ref()),
        ("fam", None)
    );
    for needle in [
        "neither@1 has no `pull` action",
        "`fam-a-builder`: neither@1 has no `builder-create` action",
        "`fam-b-push`: neither@1 has no `push` action",
    ] {
        assert!(neither.reason.contains(needle), "{}", neither.reason);
    }
    assert!(neither.steps.is_empty(), "nothing ran");
    for client in ["builder-1", "both-1", "push-1"] {
        assert!(
            !scratch.join(format!("fam--{client}")).exists(),
            "sandbox removed"
        );
    }
}

/// A variant run as its own file (the mutation test does) is a scenario like any other:
/// its own id, no variant recorded, not applicable to a client without its action.
#[tokio::test]
async fn a_variant_run_as_its_own_file_is_its_own_scenario() {
    if !Path::new("/usr/bin/curl").exists() {
        panic!("this test needs /usr/bin/curl");
    }
    let dir = tempfile::tempdir().unwrap();
    family(dir.path());
    let variant = dir.path().join("fam-a-builder.toml");
    let scratch = dir.path().join("scratch");
    let (builder, pull) = (
        with_actions("builder@1", &[Action::BuilderCreate]),
        with_actions("pull@1", &[Action::Pull]),
    );
    let (ran, not) = tokio::join!(
        run_cell(&variant, &builder, 914, &scratch),
        run_cell(&variant, &pull, 915, &scratch),
    );
    assert_eq!(ran.verdict, Verdict::Pass, "{ran:#?}");
    assert_eq!(
        (ran.scenario.as_str(), ran.variant.as_ref()),
        ("fam-a-builder", None)
    );
    assert_eq!(not.verdict, Verdict::NotApplicable, "{not:#?}");
    assert_eq!(not.reason, "pull@1 has no `builder-create` action");
}
