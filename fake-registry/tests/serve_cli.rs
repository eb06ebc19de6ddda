//! `fake-registry serve --config FILE`: the ready line, and config errors with file:line.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_fake-registry");

/// Kills the child (and waits) however the test ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Reads the first stdout line, giving up after 30 s.
fn ready_line(child: &mut Child) -> Value {
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("no ready line within 30 s");
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
}

#[tokio::test]
async fn serve_config_prints_one_ready_line_with_everything_a_runner_needs() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fleet.toml");
    std::fs::write(
        &config,
        r#"
[[host]]
name = "acr"
hostname = "cli.azurecr.test"
port = 0
[host.profile]
kind = "acr"
blob_redirect = "cli.blob.core.windows.test"
[[host.principal]]
name = "sp"
kind = "service-principal"
username = "app-id"
grants = ["**:pull"]
"#,
    )
    .unwrap();
    let state = dir.path().join("state");
    let child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .arg("--state-dir")
        .arg(&state)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Killed(child);
    let ready = ready_line(&mut child.0);
    let ready = &ready["ready"];
    assert_eq!(
        ready["ca"].as_str().unwrap(),
        state.join("ca.pem").to_str().unwrap()
    );
    assert!(
        ready["admin"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:")
    );
    let hosts = ready["hosts"].as_array().unwrap();
    assert_eq!(hosts.len(), 2, "{hosts:?}");
    let acr = &hosts[0];
    assert_eq!(acr["name"], "acr");
    assert_eq!(acr["profile"], "acr/1");
    assert_eq!(acr["role"], "registry");
    let port = acr["port"].as_u64().unwrap();
    assert_eq!(
        acr["url"].as_str().unwrap(),
        format!("https://cli.azurecr.test:{port}")
    );
    assert_eq!(hosts[1]["name"], "acr.storage");
    assert_eq!(hosts[1]["hostname"], "cli.blob.core.windows.test");
    assert_eq!(hosts[1]["port"], 443);
    let cred = &ready["credentials"][0];
    assert_eq!(cred["principal"], "sp");
    assert_eq!(cred["generated"], true);
    let secret = cred["secret"].as_str().unwrap();

    // The registry answers by hostname with the printed CA and credentials.
    let addr: std::net::SocketAddr = format!("{}:{port}", acr["address"].as_str().unwrap())
        .parse()
        .unwrap();
    let pem = std::fs::read(state.join("ca.pem")).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .resolve("cli.azurecr.test", addr)
        .no_proxy()
        .build()
        .unwrap();
    let r = client
        .get(acr["url"].as_str().unwrap().to_owned() + "/v2/_catalog")
        .basic_auth("app-id", Some(secret))
        .send()
        .await
        .unwrap();
    // the SP has no catalog grant: authenticated, then refused for scope
    assert_eq!(r.status(), reqwest::StatusCode::UNAUTHORIZED);
    let r = client
        .get(acr["url"].as_str().unwrap().to_owned() + "/v2/")
        .basic_auth("app-id", Some(secret))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), reqwest::StatusCode::OK);

    // SIGTERM stops it.
    drop(client);
    let killed = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            assert!(status.success(), "{status:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still running 20 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_config_error_names_file_line_and_field_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        "[[host]]\nname = \"a\"\nhostname = \"a.test\"\naddress = \"192.168.1.1\"\nprofile = { kind = \"open\" }\n",
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("still running after 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}:4:11: field `host[0].address`: 192.168.1.1 is not a loopback address",
            config.display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: use an address in 127.0.0.0/8"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn help_documents_every_flag() {
    let out = Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--config",
        "--state-dir",
        "--listen",
        "--storage",
        "--max-manifest-bytes",
        "--chunk-min-length",
        "--allow-sparse-index",
    ] {
        assert!(text.contains(flag), "{flag} missing from:\n{text}");
    }
}
