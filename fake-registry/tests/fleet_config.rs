//! `fake-registry serve --config`: every example config starts; two fleets of one config
//! start side by side; a realm on the registry's own hostname names the registry's port;
//! configuration errors are located, printed once, without a backtrace, exit status 2.

use fake_registry::config::FleetConfig;
use fake_registry::fleet::{Fleet, FleetOptions, RunningFleet};
use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("examples/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

async fn start(config: FleetConfig, dir: &Path, base: Option<Ipv4Addr>) -> RunningFleet {
    let mut options = FleetOptions::new(dir);
    if let Some(ip) = base.or(config.address_base()) {
        options.first_address = ip;
    }
    let hosts = config.into_hosts(0).expect("host specs");
    Fleet::start(hosts, options).await.expect("fleet starts")
}

/// A client trusting the fleet's CA, every hostname resolved to its address.
fn client(fleet: &RunningFleet) -> reqwest::Client {
    install_crypto();
    let ca = std::fs::read(fleet.ca_pem_path()).unwrap();
    let mut b = reqwest::Client::builder()
        .use_rustls_tls()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap());
    for h in fleet.hosts() {
        b = b.resolve(&h.hostname, h.addr);
    }
    b.build().unwrap()
}

#[tokio::test]
async fn every_example_config_parses_and_starts() {
    let files = examples();
    assert!(files.len() >= 2, "{files:?}");
    for (i, file) in files.iter().enumerate() {
        let config = FleetConfig::load(file).unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<String> = config
            .hosts
            .iter()
            .map(|h| h.name.get_ref().clone())
            .collect();
        let dir = tempfile::tempdir().unwrap();
        // Each example on addresses of its own, away from other tests.
        let base = Ipv4Addr::new(127, 0, 230 + i as u8, 2);
        let fleet = start(config, dir.path(), Some(base)).await;
        let c = client(&fleet);
        for name in &names {
            let host = fleet
                .host(name)
                .unwrap_or_else(|| panic!("{file:?}: {name}"));
            let r = c.get(format!("{}/v2/", host.url)).send().await;
            let status = r
                .unwrap_or_else(|e| panic!("{file:?}: {name}: {e}"))
                .status();
            assert!(
                status == 200 || status == 401,
                "{file:?}: {name}: /v2/ answered {status}"
            );
        }
        fleet.shutdown().await;
    }
}

const SIDE_BY_SIDE: &str = r#"
address_base = "127.0.240.2"

[[host]]
name = "open"
hostname = "registry.example.com"
[host.profile]
kind = "open"

[[host]]
name = "gitlab"
hostname = "registry.gitlab.example.com"
[host.profile]
kind = "gitlab"
realm_host = "gitlab.example.com"
projects = [{ path = "team/app", public = true }]
"#;

#[tokio::test]
async fn two_fleets_from_the_same_config_start_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let parse = || FleetConfig::parse(SIDE_BY_SIDE, "fleet.toml").unwrap();
    let first = start(parse(), &dir.path().join("a"), None).await;
    let second = start(parse(), &dir.path().join("b"), None).await;
    let a: BTreeSet<SocketAddr> = first.hosts().iter().map(|h| h.addr).collect();
    let b: BTreeSet<SocketAddr> = second.hosts().iter().map(|h| h.addr).collect();
    assert_eq!(a.len(), 3, "{a:?}");
    assert_eq!(b.len(), 3, "{b:?}");
    assert!(a.is_disjoint(&b), "{a:?} {b:?}");
    assert_eq!(
        first.host("open").unwrap().addr,
        "127.0.240.2:443".parse().unwrap()
    );
    // Both serve their hosts, each with its own CA.
    for fleet in [&first, &second] {
        let c = client(fleet);
        for h in fleet.hosts().iter().filter(|h| h.role == "registry") {
            let r = c.get(format!("{}/v2/", h.url)).send().await.unwrap();
            assert!(matches!(r.status().as_u16(), 200 | 401), "{}", h.url);
        }
    }
}

#[tokio::test]
async fn a_realm_on_the_registry_own_hostname_names_the_registry_port() {
    let text = r#"
[[host]]
name = "gitlab"
hostname = "gitlab.example.com"
address = "127.0.241.2"
port = 5050
[host.profile]
kind = "gitlab"
realm_host = "gitlab.example.com"
projects = [{ path = "team/app", public = false }]

[[host]]
name = "acr"
hostname = "myregistry.azurecr.io"
address = "127.0.241.3"
port = 5051
[host.profile]
kind = "acr"
storage_redirect = false
"#;
    let dir = tempfile::tempdir().unwrap();
    let fleet = start(
        FleetConfig::parse(text, "f.toml").unwrap(),
        dir.path(),
        None,
    )
    .await;
    // The realm hostname is served once: by the registry's listener.
    let gitlab: Vec<_> = fleet
        .hosts()
        .iter()
        .filter(|h| h.hostname == "gitlab.example.com")
        .collect();
    assert_eq!(gitlab.len(), 1, "{:?}", fleet.hosts());
    let c = client(&fleet);
    let r = c
        .get("https://gitlab.example.com:5050/v2/")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"].as_bytes(),
        b"Bearer realm=\"https://gitlab.example.com:5050/jwt/auth\",service=\"container_registry\""
    );
    // The realm is really served there.
    let r = c
        .get("https://gitlab.example.com:5050/jwt/auth?service=container_registry")
        .send()
        .await
        .unwrap();
    // GitLab's token endpoint answers (anonymous, no scope: 403), not a 404 page.
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("content-type").is_some());

    let r = c
        .get("https://myregistry.azurecr.io:5051/v2/")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"].as_bytes(),
        b"Bearer realm=\"https://myregistry.azurecr.io:5051/oauth2/token\",service=\"myregistry.azurecr.io\""
    );
}

fn serve(args: &[&str], config: Option<&Path>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_fake-registry"));
    cmd.arg("serve").args(args);
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    cmd.env("RUST_BACKTRACE", "1")
        .env("RUST_LIB_BACKTRACE", "1")
        .output()
        .unwrap()
}

fn assert_no_backtrace(stderr: &str) {
    assert!(
        !stderr.to_ascii_lowercase().contains("stack backtrace"),
        "{stderr}"
    );
    assert!(!stderr.contains("Caused by"), "{stderr}");
}

/// Mistakes the fleet could only find when starting are found in the file: located, one
/// message, exit status 2.
#[test]
fn config_errors_are_located_without_a_backtrace() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "no-upstream.toml",
            "[[host]]\nname = \"m\"\nhostname = \"mirror.example.com\"\n[host.profile]\nkind = \"mirror\"\n",
            ":4:1: field `host[0].profile.upstreams`: a mirror needs at least one upstream",
        ),
        (
            "outside.toml",
            "[[host]]\nname = \"m\"\nhostname = \"mirror.example.com\"\n[host.profile]\nkind = \"mirror\"\nupstreams = [{ key = \"docker.io\", url = \"https://registry-1.docker.io\" }]\n",
            ":6:41: field `host[0].profile.upstreams[0].url`: upstream \"https://registry-1.docker.io\": registry-1.docker.io is not a host of this fleet",
        ),
        (
            "ecr-seed.toml",
            "[[host]]\nname = \"ecr\"\nhostname = \"123456789012.dkr.ecr.us-east-2.amazonaws.com\"\n[host.profile]\nkind = \"ecr\"\nrepositories = [\"app\"]\n[[host.seed]]\nrepository = \"openjdk\"\ntag = \"17\"\n",
            ":8:14: field `host[0].seed[0].repository`: ECR repository \"openjdk\" does not exist",
        ),
    ];
    for (file, text, expected) in cases {
        let path = dir.path().join(file);
        std::fs::write(&path, text).unwrap();
        let out = serve(&[], Some(&path));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{file}: {stderr}");
        assert!(
            stderr.contains(&format!("{}{expected}", path.display())),
            "{file}: {stderr}"
        );
        assert!(stderr.contains("\n  hint: "), "{file}: {stderr}");
        assert_no_backtrace(&stderr);
        assert!(out.stdout.is_empty(), "{file}: no ready line");
    }
}

#[test]
fn an_unreadable_config_says_so_without_a_position() {
    let out = serve(&[], Some(Path::new("/nonexistent/fleet.toml")));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr,
        "fake-registry: cannot read /nonexistent/fleet.toml: No such file or directory\n"
    );
}

#[test]
fn a_bind_error_is_printed_once() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = serve(&["--listen", &addr], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr.matches("Address already in use").count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("cannot listen on {addr}: Address already in use")),
        "{stderr}"
    );
    assert_no_backtrace(&stderr);
}

#[test]
fn address_base_from_the_command_line_must_be_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f.toml");
    std::fs::write(
        &path,
        "[[host]]\nname = \"o\"\nhostname = \"registry.example.com\"\n[host.profile]\nkind = \"open\"\n",
    )
    .unwrap();
    let out = serve(&["--address-base", "10.0.0.2"], Some(&path));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not a loopback address"), "{stderr}");
}

#[test]
fn serve_help_points_to_the_format_document() {
    let out = Command::new(env!("CARGO_BIN_EXE_fake-registry"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("docs/fleet.md"), "{help}");
    assert!(!help.contains("src/config.rs"), "{help}");
    assert!(help.contains("SIGTERM"), "{help}");
}
