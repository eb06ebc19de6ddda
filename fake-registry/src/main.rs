//! `fake-registry`: the registry as a process.

use clap::{Parser, Subcommand};
use fake_registry::journal::JournalLimits;
use fake_registry::{FakeRegistry, RegistryOptions};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

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
    /// Serve until interrupted: an open (no auth) registry over plain HTTP, or with
    /// --config the fleet of registries a TOML file declares (hostnames, TLS, profiles;
    /// the format: docs/fleet.md, examples: examples/*.toml).
    ///
    /// Once it accepts connections it prints one JSON line to stdout:
    /// {"ready":{"url":"http://ADDR","listen":"ADDR","storage":"memory"|DIR,"pid":N}}, or
    /// with --config {"ready":{"ca":PATH,"hosts":[{name,hostname,addr,url,profile,tls,role}],
    /// "admin":"http://127.0.0.1:PORT","pid":N}} (the admin API: journal, reset, faults).
    /// Logs go to stderr (RUST_LOG controls the level). Stop it with Ctrl-C (SIGINT) or
    /// SIGTERM: listeners close, requests in flight finish, the process exits 0.
    /// Exit status 2: a usage or configuration error; 1: it could not start (an address
    /// in use…).
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Serve the fleet this TOML file declares (the format: docs/fleet.md) instead of one
    /// open registry; --listen and --storage are then ignored. Errors in the file name its
    /// line, column and field.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// With --config: the first loopback address handed to hosts that name none (overrides
    /// the file's `address_base`; default 127.0.0.2). Addresses whose port is already in use
    /// are skipped, so two fleets can run side by side.
    #[arg(long, value_name = "127.X.Y.Z")]
    address_base: Option<Ipv4Addr>,
    /// With --config: where the generated CA (ca.pem, ca-key.pem) is written
    /// [default: a new directory under the system temp dir].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Address to listen on; port 0 picks a free port (the ready line says which).
    #[arg(long, default_value = "127.0.0.1:5000")]
    listen: SocketAddr,
    /// Keep content on disk in DIR (survives restarts; acknowledged writes are fsynced).
    /// Without it, content lives in memory and is gone on exit.
    #[arg(long, value_name = "DIR")]
    storage: Option<PathBuf>,
    /// Largest manifest accepted, in bytes (the spec asks for at least 4 MiB).
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    max_manifest_bytes: usize,
    /// Advertise OCI-Chunk-Min-Length on upload sessions.
    #[arg(long, value_name = "BYTES")]
    chunk_min_length: Option<u64>,
    /// Accept manifests whose blobs, and indexes whose child manifests, are not in the
    /// repository (sparse content).
    #[arg(long)]
    allow_sparse_index: bool,
    /// Automatic content discovery: a mount without `from` mounts from a repository that
    /// holds the blob (off by default, as in CNCF distribution ≥ 2.8).
    #[arg(long)]
    automatic_mount: bool,
    /// Most request-journal entries kept (oldest dropped first); 0 turns the journal off.
    #[arg(long, value_name = "N", default_value_t = JournalLimits::DEFAULT.max_entries)]
    journal_entries: usize,
    /// Most bytes the request journal keeps (approximate; oldest dropped first).
    #[arg(long, value_name = "BYTES", default_value_t = JournalLimits::DEFAULT.max_bytes)]
    journal_bytes: usize,
}

impl ServeArgs {
    fn journal_limits(&self) -> JournalLimits {
        JournalLimits {
            max_entries: self.journal_entries,
            max_bytes: self.journal_bytes,
        }
    }
}

/// Why `fake-registry` stops: a user's mistake (exit 2) or a failure to start (exit 1).
/// Printed once, as one message: no error chain, no backtrace.
enum Failure {
    Usage(String),
    Start(String),
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colours only on a terminal: logs piped to a file (CI, daemon logs kept as evidence)
        // must not carry ANSI escape sequences.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let outcome = match Cli::parse().command {
        Command::Serve(args) => serve(args).await,
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(message)) => {
            eprintln!("fake-registry: {message}");
            ExitCode::from(2)
        }
        Err(Failure::Start(message)) => {
            eprintln!("fake-registry: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> Result<(), Failure> {
    if let Some(path) = &args.config {
        return serve_fleet(
            path,
            args.address_base,
            args.state_dir.clone(),
            args.journal_limits(),
        )
        .await;
    }
    if args.address_base.is_some() {
        return Err(Failure::Usage(
            "--address-base applies to a fleet: use it with --config FILE".into(),
        ));
    }
    let options = RegistryOptions {
        max_manifest_bytes: args.max_manifest_bytes,
        chunk_min_length: args.chunk_min_length,
        allow_sparse_index: args.allow_sparse_index,
        automatic_mount: args.automatic_mount,
        ..RegistryOptions::default()
    };
    let mut builder = FakeRegistry::builder()
        .listen(args.listen)
        .options(options)
        .journal_limits(args.journal_limits());
    if let Some(dir) = &args.storage {
        builder = builder.storage_dir(dir);
    }
    // The error's text already carries its cause (`cannot listen on ADDR: <cause>`).
    let running = builder
        .start()
        .await
        .map_err(|e| Failure::Start(format!("cannot start the registry: {e}")))?;
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

async fn serve_fleet(
    path: &std::path::Path,
    address_base: Option<Ipv4Addr>,
    state_dir: Option<PathBuf>,
    journal_limits: JournalLimits,
) -> Result<(), Failure> {
    use fake_registry::config::FleetConfig;
    use fake_registry::fleet::{Fleet, FleetOptions};
    let config = FleetConfig::load(path).map_err(|e| Failure::Usage(e.to_string()))?;
    if let Some(ip) = address_base
        && !ip.is_loopback()
    {
        return Err(Failure::Usage(format!(
            "--address-base {ip} is not a loopback address (127.0.0.0/8)"
        )));
    }
    let first_address = address_base.or(config.address_base());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let hosts = config
        .into_hosts(now)
        .map_err(|e| Failure::Usage(format!("{}: {e}", path.display())))?;
    let state_dir = state_dir.unwrap_or_else(|| {
        std::env::temp_dir().join(format!("fake-registry-{}", std::process::id()))
    });
    let mut options = FleetOptions::new(&state_dir);
    options.journal_limits = journal_limits;
    if let Some(ip) = first_address {
        options.first_address = ip;
    }
    let fleet = Fleet::start(hosts, options)
        .await
        .map_err(|e| Failure::Start(format!("cannot start the fleet: {e}")))?;
    let ready = serde_json::json!({
        "ready": {
            "ca": fleet.ca_pem_path(),
            "hosts": fleet.hosts(),
            "admin": fleet.admin_url(),
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
