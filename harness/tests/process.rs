//! The process layer: timeouts kill the whole group, the hosts file is seen only inside
//! the child's private mount namespace, nothing is left running.

use harness::process::{self, Isolation, Spec};
use harness::sandbox::{RUN_ID_VAR, Sandbox};
use std::path::Path;
use std::time::Duration;

fn spec(dir: &Path, argv: &[&str], run_id: &str, isolation: Isolation) -> Spec {
    Spec {
        argv: argv.iter().map(|s| s.to_string()).collect(),
        env: vec![
            ("PATH".into(), "/usr/bin:/bin".into()),
            (RUN_ID_VAR.into(), run_id.into()),
        ],
        cwd: dir.to_path_buf(),
        stdin: None,
        stdout: dir.join("out"),
        stderr: dir.join("err"),
        isolation,
    }
}

fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    !stat.is_empty()
        && !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
}

#[test]
fn a_hanging_client_is_killed_with_its_whole_group_at_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let run_id = format!("test-timeout-{}", std::process::id());
    // the "client" starts a grandchild that also hangs, then hangs itself
    let script = "sleep 1000 & echo grandchild=$! ; exec sleep 1000";
    let s = spec(
        dir.path(),
        &["sh", "-c", script],
        &run_id,
        Isolation::default(),
    );
    let group = process::spawn(&s).unwrap();
    let pgid = group.pgid();
    let finished = group.wait(Duration::from_millis(500));
    assert!(finished.timed_out);
    assert_eq!(finished.exit_code, None);
    assert!(finished.signal.is_some());
    let out = std::fs::read_to_string(dir.path().join("out")).unwrap();
    let grandchild: u32 = out
        .trim()
        .trim_start_matches("grandchild=")
        .parse()
        .unwrap();
    // the kill is synchronous, but the kernel reaps the orphaned grandchild through init
    let mut gone = false;
    for _ in 0..200 {
        if !alive(grandchild) {
            gone = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(gone, "grandchild {grandchild} of group {pgid} survived");
    assert!(process::processes_with_env(RUN_ID_VAR, &run_id).is_empty());
}

#[test]
fn a_finished_client_reports_its_exit_code_and_output_tail() {
    let dir = tempfile::tempdir().unwrap();
    let s = spec(
        dir.path(),
        &["sh", "-c", "echo hello; echo oops >&2; exit 3"],
        "t",
        Isolation::default(),
    );
    let f = process::run(&s, Duration::from_secs(30)).unwrap();
    assert_eq!(f.exit_code, Some(3));
    assert!(!f.timed_out);
    assert_eq!(process::tail(&s.stdout, 1024), "hello\n");
    assert_eq!(process::tail(&s.stderr, 1024), "oops\n");
}

#[test]
fn the_hosts_file_is_bind_mounted_only_inside_the_child() {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::create(&dir.path().join("cell")).unwrap();
    sandbox
        .write_hosts(&[("registry.example.test".into(), "127.0.9.2".parse().unwrap())])
        .unwrap();
    let before = std::fs::read_to_string("/etc/hosts").unwrap();
    let s = spec(
        dir.path(),
        &["cat", "/etc/hosts"],
        "t",
        Isolation::hosts(&sandbox.hosts_file),
    );
    let f = process::run(&s, Duration::from_secs(30)).unwrap();
    assert_eq!(f.exit_code, Some(0), "{}", process::tail(&s.stderr, 4096));
    let seen = std::fs::read_to_string(dir.path().join("out")).unwrap();
    assert!(seen.contains("127.0.9.2\tregistry.example.test"), "{seen}");
    assert_eq!(std::fs::read_to_string("/etc/hosts").unwrap(), before);
}

#[test]
fn secrets_are_redacted_from_tails_and_repro_lines_quote_arguments() {
    let secrets = vec![("s3cr3t-value".to_string(), "secret of acr/sp".to_string())];
    assert_eq!(
        process::redact("password s3cr3t-value here", &secrets),
        "password [REDACTED:secret of acr/sp] here"
    );
    let dir = Path::new("/tmp/x");
    let s = spec(
        dir,
        &["crane", "pull", "a b"],
        "t",
        Isolation::hosts(Path::new("/tmp/x/hosts")),
    );
    let line = process::repro(&s, None);
    assert!(
        line.starts_with("cd /tmp/x && env -i PATH=/usr/bin:/bin"),
        "{line}"
    );
    assert!(line.contains("unshare --mount --propagation private sh -c 'mount --bind /tmp/x/hosts /etc/hosts && exec crane pull '\\''a b'\\'''"), "{line}");
}
