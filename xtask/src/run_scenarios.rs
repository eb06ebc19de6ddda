//! `cargo xtask run-scenarios [--client NAME[=PATH]|NAME@VERSION[,…]] [--scenario GLOB]
//! [-j N] [--out DIR]`: installs the clients that are missing, runs the scenario matrix
//! (scenarios × clients) and writes the reports to `reports/out/` (JSON, JUnit XML,
//! Markdown), then prints the Markdown matrix. The work lives in `harness::runner`.

use anyhow::{Context, Result, bail};
use harness::clients::{self, Binaries};
use harness::provision::{self, Cache, Manifest, Progress};
use harness::runner::{self, ClientColumn, RunOptions};
use harness::scenario::{self, Scenario};
use reports::ClientInfo;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    /// Clients (columns): `name`, `name@version`, or `name=/path/to/binary` for a dev
    /// build. Commas allowed; repeatable. Default: every driver (crane, skopeo, docker).
    #[arg(long = "client", value_name = "NAME[@VERSION|=PATH]")]
    clients: Vec<String>,
    /// Scenario file stems to run (a glob: `acr-*`). Default: every scenarios/*.toml.
    #[arg(long, value_name = "GLOB")]
    scenario: Option<String>,
    /// Cells run at once.
    #[arg(short = 'j', long, default_value_t = 2)]
    jobs: usize,
    /// Where reports and cell sandboxes go.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Never install missing clients (their cells are `not-run`).
    #[arg(long)]
    no_install: bool,
    /// No progress bar (plain lines instead).
    #[arg(long)]
    no_progress: bool,
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

pub fn run(args: Args) -> Result<()> {
    let root = workspace_root();
    let files = scenario::discover(&root.join("scenarios"), args.scenario.as_deref())
        .context("reading scenarios/")?;
    if files.is_empty() {
        bail!(
            "no scenario matches {:?} in {}",
            args.scenario,
            root.join("scenarios").display()
        );
    }
    let mut scenarios = Vec::new();
    let mut errors = Vec::new();
    for f in &files {
        match Scenario::load(f) {
            Ok(s) => scenarios.push(s),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if !errors.is_empty() {
        for e in &errors {
            eprintln!("{e}");
        }
        bail!("{} scenario file(s) are malformed", errors.len());
    }

    let requests: Vec<String> = if args.clients.is_empty() {
        clients::DRIVERS.iter().map(|s| s.to_string()).collect()
    } else {
        args.clients
            .iter()
            .flat_map(|c| c.split(','))
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect()
    };
    let manifest =
        Manifest::load(provision::default_manifest_path()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let columns = resolve_clients(&requests, &manifest, !args.no_install)?;

    let out = args.out.unwrap_or_else(|| root.join("reports/out"));
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let helper = std::env::current_exe()
        .context("locating the xtask binary (it is also the credential helper)")?;
    let opts = RunOptions {
        out_dir: out.clone(),
        jobs: args.jobs,
        helper,
        progress: !args.no_progress,
        run_id: runner::new_run_id(),
        root: root.clone(),
    };
    eprintln!(
        "running {} scenarios × {} clients ({} cells, -j {}) into {}",
        scenarios.len(),
        columns.len(),
        scenarios.len() * columns.len(),
        opts.jobs,
        out.display()
    );
    let outcome = runner::run_matrix(&scenarios, &columns, &opts);
    let written = crate::report_writers::write_all(&outcome.report, &out)?;
    println!("{}", crate::report_writers::markdown(&outcome.report));
    for w in &written {
        eprintln!("wrote {}", w.display());
    }
    if !outcome.leftovers.is_empty() {
        bail!(
            "processes outlived the run and were killed: {:?}",
            outcome.leftovers
        );
    }
    if outcome.report.has_failures() {
        bail!("the matrix has fail or error cells");
    }
    Ok(())
}

/// `--client` requests → matrix columns, installing what is missing when `install`.
pub fn resolve_clients(
    requests: &[String],
    manifest: &Manifest,
    install: bool,
) -> Result<Vec<ClientColumn>> {
    let cache = Cache::from_env();
    let mut columns = Vec::new();
    for request in requests {
        let (name_version, path) = match request.split_once('=') {
            Some((n, p)) => (n.trim(), Some(PathBuf::from(p.trim()))),
            None => (request.as_str(), None),
        };
        let spec = manifest
            .resolve(name_version)
            .map_err(|e| anyhow::anyhow!("--client {request}: {e}"))?;
        let Some(driver) = clients::driver(&spec.name) else {
            bail!(
                "--client {request}: regcompat has no driver for {} yet (drivers: {})",
                spec.name,
                clients::DRIVERS.join(", ")
            );
        };
        let mut info = ClientInfo {
            id: spec.to_string(),
            name: spec.name.clone(),
            version: spec.version.clone(),
            source: "cache".into(),
            path: None,
            unavailable: None,
        };
        let mut bins = Binaries::default();
        let mut installed = cache.installed(&spec);
        if installed.is_none() && install {
            // with what it requires (docker → containerd, runc)
            let specs = manifest
                .resolve_all(&[spec.to_string()], true)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let results = provision::install(&specs, &Progress::auto());
            match results.into_iter().next() {
                Some(Ok(i)) => installed = Some(i),
                Some(Err(e)) => info.unavailable = Some(format!("install failed: {}", e.reason())),
                None => info.unavailable = Some("install produced nothing".into()),
            }
        }
        match &installed {
            Some(i) => {
                for b in driver.binaries() {
                    if let Some(p) = i.binary(b) {
                        bins.paths.insert(b.to_string(), p.to_path_buf());
                    }
                }
                info.path = i
                    .binary(driver.binaries()[0])
                    .map(|p| p.display().to_string());
            }
            None if info.unavailable.is_none() && path.is_none() => {
                info.unavailable = Some(format!(
                    "{spec} is not installed (cargo xtask install-clients {spec})"
                ));
            }
            None => {}
        }
        if let Some(p) = path {
            // a maintainer's own build of the client's main binary
            if !p.is_file() {
                bail!("--client {request}: {} is not a file", p.display());
            }
            info.id = format!("{}@dev", spec.name);
            info.version = "dev".into();
            info.source = "path".into();
            info.path = Some(p.display().to_string());
            info.unavailable = None;
            bins.paths.insert(driver.binaries()[0].to_string(), p);
            for b in &driver.binaries()[1..] {
                if !bins.paths.contains_key(*b) {
                    info.unavailable = Some(format!(
                        "{b} is needed beside the given binary and is not installed"
                    ));
                }
            }
        }
        columns.push(ClientColumn {
            info,
            driver: driver.name().to_string(),
            bins,
        });
    }
    Ok(columns)
}
