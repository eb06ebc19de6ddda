//! Sandboxes and processes: hosts guard, isolation, timeout kill, no leftovers.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use harness::process::{self, Spec};
use harness::sandbox::{self, Sandbox, SandboxError};
use rstest::rstest;

fn sh(sb: &Sandbox, script: &str) -> Spec {
    let mut spec = Spec::new("/bin/sh", vec!["-c".into(), script.into()], &sb.work);
    spec.env = sb.env();
    spec.binds = vec![(sb.hosts.clone(), "/etc/hosts".into())];
    spec.timeout = Duration::from_secs(30);
    spec.grace = Duration::from_millis(200);
    spec
}

#[rstest]
#[case("10.0.0.1")]
#[case("192.168.1.5")]
#[case("8.8.8.8")]
#[case("::ffff:127.0.0.1")]
#[case("2001:db8::1")]
#[case("0.0.0.0")]
fn the_hosts_guard_refuses_non_loopback_addresses(#[case] addr: &str) {
    let addr: IpAddr = addr.parse().unwrap();
    let entries = vec![
        ("ok.example".to_string(), "127.0.0.2".parse().unwrap()),
        ("myregistry.azurecr.io".to_string(), addr),
    ];
    let err = sandbox::hosts_file(&entries).unwrap_err();
    assert!(
        matches!(&err, SandboxError::NotLoopback { hostname, .. } if hostname == "myregistry.azurecr.io"),
        "{err}"
    );
    assert!(err.to_string().contains("refusing to run"));
}

#[rstest]
#[case("127.0.0.1")]
#[case("127.3.2.1")]
#[case("::1")]
fn the_hosts_guard_accepts_loopback(#[case] addr: &str) {
    let text = sandbox::hosts_file(&[("a.example".into(), addr.parse().unwrap())]).unwrap();
    assert!(text.contains(&format!("{addr}\ta.example\n")));
}

#[test]
fn the_hosts_guard_refuses_hostnames_that_would_inject_lines() {
    let err =
        sandbox::hosts_file(&[("a.example\n10.0.0.1 b".into(), "127.0.0.2".parse().unwrap())])
            .unwrap_err();
    assert!(matches!(err, SandboxError::BadHostname(_)));
}

#[test]
fn two_cells_in_parallel_see_only_their_own_config_and_hosts() {
    let tmp = tempfile::tempdir().unwrap();
    let run = format!("iso-{}", std::process::id());
    let cells: Vec<Sandbox> = (0..2)
        .map(|i| {
            let sb = Sandbox::create(&tmp.path().join(format!("cell{i}")), &run).unwrap();
            std::fs::write(
                sb.docker_config.join("config.json"),
                format!("{{\"cell\":{i}}}"),
            )
            .unwrap();
            sb.write_hosts(&[(
                "myregistry.azurecr.io".into(),
                format!("127.0.0.{}", 10 + i).parse().unwrap(),
            )])
            .unwrap();
            sb
        })
        .collect();
    let script =
        "cat \"$DOCKER_CONFIG/config.json\"; echo; grep azurecr /etc/hosts; echo \"$HOME\"";
    let handles: Vec<_> = cells
        .iter()
        .map(|sb| {
            let spec = sh(sb, script);
            std::thread::spawn(move || process::run(&spec).unwrap())
        })
        .collect();
    let outs: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for (i, out) in outs.iter().enumerate() {
        assert!(out.success(), "{out:?}");
        let other = 1 - i;
        assert!(
            out.stdout_tail.contains(&format!("{{\"cell\":{i}}}")),
            "{out:?}"
        );
        assert!(!out.stdout_tail.contains(&format!("{{\"cell\":{other}}}")));
        assert!(
            out.stdout_tail
                .contains(&format!("127.0.0.{}\tmyregistry.azurecr.io", 10 + i))
        );
        assert!(!out.stdout_tail.contains(&format!("127.0.0.{}", 10 + other)));
        assert!(
            out.stdout_tail
                .contains(&cells[i].home.display().to_string())
        );
    }
    // The machine's own hosts file was never touched.
    let machine = std::fs::read_to_string("/etc/hosts").unwrap();
    assert!(!machine.contains("myregistry.azurecr.io"));
}

#[test]
fn a_hanging_client_is_killed_with_its_whole_group() {
    let tmp = tempfile::tempdir().unwrap();
    let run = format!("hang-{}", std::process::id());
    let sb = Sandbox::create(tmp.path(), &run).unwrap();
    // A grandchild that ignores SIGTERM, and the client itself blocked in sleep.
    let mut spec = sh(
        &sb,
        "sh -c 'trap \"\" TERM; sleep 1000' & echo started; sleep 1000",
    );
    spec.timeout = Duration::from_millis(300);
    let out = process::run(&spec).unwrap();
    assert!(out.timed_out);
    assert_eq!(out.exit_code, None);
    assert!(out.stdout_tail.contains("started"));
    // kill(-pgid, 0) fails with ESRCH once every member is gone (zombies are reaped by init
    // or by us; the check is repeated a bounded number of times for reaping to happen).
    let mut alive = true;
    for _ in 0..200 {
        alive = process::group_alive(out.pgid) && !sandbox::processes_of_run(&run).is_empty();
        if !alive {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(!alive, "group {} survived", out.pgid);
    assert!(sandbox::processes_of_run(&run).is_empty());
}

#[test]
fn no_process_of_a_run_is_left_after_the_steps_finish() {
    let tmp = tempfile::tempdir().unwrap();
    let run = format!("leftover-{}", std::process::id());
    let sb = Sandbox::create(tmp.path(), &run).unwrap();
    // The client exits at once but leaves a background child behind.
    let out = process::run(&sh(&sb, "sleep 1000 & echo bye")).unwrap();
    assert!(out.success(), "{out:?}");
    let mut left = vec![];
    for _ in 0..200 {
        left = sandbox::processes_of_run(&run);
        if left.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn secrets_are_redacted_from_tails_and_repro_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let sb = Sandbox::create(tmp.path(), "redact").unwrap();
    let mut spec = sh(&sb, "echo password=hunter22; echo hunter22 >&2");
    spec.secrets = vec!["hunter22".into()];
    let out = process::run(&spec).unwrap();
    assert_eq!(out.stdout_tail.trim(), "password=***");
    assert_eq!(out.stderr_tail.trim(), "***");
    assert!(!spec.repro().contains("hunter22"));
    assert!(spec.repro().contains("unshare -m"));
}

#[test]
fn the_ca_bundle_holds_system_cas_and_ours() {
    let tmp = tempfile::tempdir().unwrap();
    let sb = Sandbox::create(tmp.path(), "ca").unwrap();
    let ours = "-----BEGIN CERTIFICATE-----\nOURS\n-----END CERTIFICATE-----\n";
    sb.write_ca(ours).unwrap();
    let bundle = std::fs::read_to_string(&sb.ca_bundle).unwrap();
    assert!(bundle.ends_with(ours));
    if Path::new(sandbox::SYSTEM_CA_BUNDLE).exists() {
        assert!(bundle.len() > ours.len());
    }
}
