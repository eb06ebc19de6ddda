//! The sandbox: the hosts-file guard and per-cell isolation of configuration.

use harness::process::{self, Isolation, Spec};
use harness::sandbox::{Sandbox, SandboxError, hosts_file_text};
use rstest::rstest;
use std::net::IpAddr;
use std::time::Duration;

#[rstest]
#[case("10.0.0.5")]
#[case("192.168.1.1")]
#[case("8.8.8.8")]
#[case("::ffff:10.0.0.1")]
#[case("fe80::1")]
fn the_hosts_guard_refuses_an_address_outside_loopback(#[case] addr: &str) {
    let addr: IpAddr = addr.parse().unwrap();
    let entries = vec![
        ("ok.example.test".to_string(), "127.0.0.2".parse().unwrap()),
        ("bad.example.test".to_string(), addr),
    ];
    let err = hosts_file_text(&entries).unwrap_err();
    assert!(
        matches!(err, SandboxError::NotLoopback { ref hostname, .. } if hostname == "bad.example.test"),
        "{err}"
    );
    // and nothing is written
    let dir = tempfile::tempdir().unwrap();
    let s = Sandbox::create(dir.path()).unwrap();
    assert!(s.write_hosts(&entries).is_err());
    assert!(!s.hosts_file.exists());
}

#[rstest]
#[case("127.0.0.1")]
#[case("127.200.3.4")]
#[case("::1")]
fn the_hosts_guard_accepts_loopback(#[case] addr: &str) {
    let t = hosts_file_text(&[("a.test".into(), addr.parse().unwrap())]).unwrap();
    assert!(t.contains(&format!("{addr}\ta.test")));
}

#[test]
fn two_cells_in_parallel_do_not_see_each_others_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let cells: Vec<Sandbox> = (0..2)
        .map(|i| Sandbox::create(&dir.path().join(format!("cell{i}"))).unwrap())
        .collect();
    for (i, c) in cells.iter().enumerate() {
        std::fs::write(
            c.docker_config.join("config.json"),
            format!("{{\"cell\":{i}}}"),
        )
        .unwrap();
        c.write_hosts(&[(
            format!("reg{i}.example.test"),
            format!("127.0.{i}.2").parse().unwrap(),
        )])
        .unwrap();
    }
    // both run at once; each prints what it sees of "its" config and of /etc/hosts
    let script =
        "sleep 0.2; cat \"$DOCKER_CONFIG/config.json\"; echo; cat /etc/hosts; ls \"$HOME/..\"";
    let handles: Vec<_> = cells
        .iter()
        .cloned()
        .map(|c| {
            std::thread::spawn(move || {
                let spec = Spec {
                    argv: vec!["sh".into(), "-c".into(), script.into()],
                    env: c.env("isolation-test"),
                    cwd: c.work.clone(),
                    stdin: None,
                    stdout: c.logs.join("out"),
                    stderr: c.logs.join("err"),
                    isolation: Isolation::hosts(&c.hosts_file),
                };
                let f = process::run(&spec, Duration::from_secs(30)).unwrap();
                assert_eq!(
                    f.exit_code,
                    Some(0),
                    "{}",
                    process::tail(&spec.stderr, 4096)
                );
                std::fs::read_to_string(&spec.stdout).unwrap()
            })
        })
        .collect();
    let outputs: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for (i, out) in outputs.iter().enumerate() {
        let other = 1 - i;
        assert!(out.contains(&format!("{{\"cell\":{i}}}")), "{out}");
        assert!(!out.contains(&format!("{{\"cell\":{other}}}")), "{out}");
        assert!(out.contains(&format!("reg{i}.example.test")), "{out}");
        assert!(!out.contains(&format!("reg{other}.example.test")), "{out}");
    }
    // the environments point at different homes
    assert_ne!(cells[0].env("x"), cells[1].env("x"));
}
