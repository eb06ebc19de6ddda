//! `fake-registry`: the registry as a process.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use fake_registry::auth::Clock;
use fake_registry::config::FleetConfig;
use fake_registry::fleet::{Fleet, FleetOptions};
use fake_registry::{FakeRegistry, RegistryOptions};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(
    name = "fake-registry",
    version,
    about = "A scriptable, spec-complete OCI Distribution registry for client-compatibility tests"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve registries until interrupted (SIGINT or SIGTERM).
    ///
    /// Open mode (no --config): one open (no auth) registry over plain HTTP on --listen. Once
    /// it accepts connections it prints one JSON line to stdout:
    /// {"ready":{"url":"http://ADDR","listen":"ADDR","storage":"memory"|DIR,"pid":N}}.
    ///
    /// Fleet mode (--config FILE): every [[host]] of the file (and the realm and storage hosts
    /// their profiles need) over TLS on its own loopback address, certificates from a CA
    /// generated at start. Once every listener accepts it prints one JSON line:
    /// {"ready":{"ca":PATH,"admin":URL,"hosts":[{"name","hostname","address","port","url",
    /// "profile","role","tls"}],"credentials":[{"host","principal","kind","username",
    /// "secret","generated"}],"pid":N}}.
    /// Config errors are printed as FILE:LINE:COL: field `PATH`: MESSAGE and a hint (exit 2).
    ///
    /// Logs go to stderr (RUST_LOG controls the level).
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Fleet mode: serve every registry declared in this TOML file (see
    /// fake-registry/src/config.rs for the format). Without it: open mode.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Fleet mode: where the CA certificate (ca.pem) and its key (ca-key.pem, mode 0600) are
    /// written. Default: a new directory regcompat-fleet-PID in the system temp directory.
    #[arg(long, value_name = "DIR", requires = "config")]
    state_dir: Option<PathBuf>,
    /// Open mode: address to listen on; port 0 picks a free port (the ready line says which).
    #[arg(long, default_value = "127.0.0.1:5000", conflicts_with = "config")]
    listen: SocketAddr,
    /// Open mode: keep content on disk in DIR (survives restarts; acknowledged writes are
    /// fsynced). Without it, content lives in memory and is gone on exit. (In fleet mode each
    /// host's `storage` key says this.)
    #[arg(long, value_name = "DIR", conflicts_with = "config")]
    storage: Option<PathBuf>,
    /// Open mode: largest manifest accepted, in bytes (the spec asks for at least 4 MiB).
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    max_manifest_bytes: usize,
    /// Open mode: advertise OCI-Chunk-Min-Length on upload sessions.
    #[arg(long, value_name = "BYTES")]
    chunk_min_length: Option<u64>,
    /// Open mode: accept manifests whose blobs, and indexes whose child manifests, are not in
    /// the repository (sparse content).
    #[arg(long)]
    allow_sparse_index: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    match Cli::parse().command {
        Command::Serve(args) => serve(args).await,
    }
}

async fn serve(args: ServeArgs) -> Result<()> {
    if let Some(config) = &args.config {
        return serve_fleet(config, args.state_dir.clone()).await;
    }
    let options = RegistryOptions {
        max_manifest_bytes: args.max_manifest_bytes,
        chunk_min_length: args.chunk_min_length,
        allow_sparse_index: args.allow_sparse_index,
        ..RegistryOptions::default()
    };
    let mut builder = FakeRegistry::builder().listen(args.listen).options(options);
    if let Some(dir) = &args.storage {
        builder = builder.storage_dir(dir);
    }
    let running = builder.start().await.context("starting the registry")?;
    let ready = serde_json::json!({
        "ready": {
            "url": running.url(),
            "listen": running.addr().to_string(),
            "storage": args.storage.as_ref().map(|d| d.display().to_string()).unwrap_or_else(|| "memory".into()),
            "pid": std::process::id(),
        }
    });
    println!("{ready}");
    wait_for_signal().await;
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}

async fn serve_fleet(path: &Path, state_dir: Option<PathBuf>) -> Result<()> {
    let config = match FleetConfig::load(path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let state_dir = state_dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("regcompat-fleet-{}", std::process::id()))
    });
    let fleet = Fleet::start(
        config,
        FleetOptions {
            state_dir,
            clock: Clock::system(),
        },
    )
    .await
    .context("starting the fleet")?;
    let hosts: Vec<serde_json::Value> = fleet
        .hosts()
        .iter()
        .map(|h| {
            serde_json::json!({
                "name": h.name,
                "hostname": h.hostname,
                "address": h.addr.ip().to_string(),
                "port": h.addr.port(),
                "url": h.url,
                "profile": h.profile,
                "role": h.role,
                "tls": h.tls,
            })
        })
        .collect();
    let ready = serde_json::json!({
        "ready": {
            "ca": fleet.ca_pem_path().display().to_string(),
            "admin": fleet.admin_url(),
            "hosts": hosts,
            "credentials": fleet.credentials(),
            "pid": std::process::id(),
        }
    });
    println!("{ready}");
    wait_for_signal().await;
    tracing::info!("shutting down");
    fleet.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
