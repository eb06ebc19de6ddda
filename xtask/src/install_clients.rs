//! `cargo xtask install-clients [NAME[@VERSION]…]`: install the real clients pinned in
//! `clients.toml` into the regcompat cache (idempotent). The work lives in
//! `harness::provision`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use harness::provision::{self, Cache, InstallOptions, Manifest, Outcome, Progress};

#[derive(clap::Args)]
pub struct Args {
    /// Clients to install: `name` (its default version), `name@version`, `name@latest`.
    /// Commas allowed. None = every pinned version of every client.
    #[arg(value_name = "NAME[@VERSION]")]
    clients: Vec<String>,
    /// The manifest [default: clients.toml at the workspace root, or $REGCOMPAT_CLIENTS_MANIFEST].
    #[arg(long, value_name = "PATH")]
    manifest: Option<PathBuf>,
    /// Cache root [default: $REGCOMPAT_CACHE_DIR, $XDG_CACHE_HOME/regcompat, ~/.cache/regcompat].
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Reinstall even if the cache stamp says installed.
    #[arg(long)]
    force: bool,
    /// Do not add the clients they require (e.g. runc for buildkit).
    #[arg(long)]
    no_requires: bool,
    /// Only list pinned clients and whether they are installed.
    #[arg(long)]
    list: bool,
}

impl Args {
    /// Install exactly these clients (their default versions and what they require).
    pub fn for_clients(clients: Vec<String>) -> Self {
        Self {
            clients,
            manifest: None,
            cache_dir: None,
            force: false,
            no_requires: false,
            list: false,
        }
    }
}

pub fn run(args: Args) -> Result<()> {
    let path = args
        .manifest
        .unwrap_or_else(provision::default_manifest_path);
    let manifest = Manifest::load(&path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let cache = args
        .cache_dir
        .map(Cache::new)
        .unwrap_or_else(Cache::from_env);

    let requests: Vec<String> = args
        .clients
        .iter()
        .flat_map(|c| c.split(','))
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(String::from)
        .collect();
    let specs = if requests.is_empty() {
        manifest.all_specs()
    } else {
        manifest
            .resolve_all(&requests, !args.no_requires)
            .with_context(|| format!("resolving against {}", manifest.path.display()))?
    };

    if args.list {
        let mut rows = vec![row(["CLIENT", "VERSION", "METHOD", "STATUS", "NOTE"])];
        for s in &specs {
            let def = manifest.client(&s.name).expect("resolved");
            let status = match cache.installed(s) {
                Some(i) => format!("installed {}", i.bin_dir.display()),
                None => "-".into(),
            };
            let dflt = if def.default_version == s.version {
                " (default)"
            } else {
                ""
            };
            rows.push(row([
                s.name.as_str(),
                &format!("{}{dflt}", s.version),
                s.recipe.method(),
                &status,
                s.note.as_deref().unwrap_or(""),
            ]));
        }
        print_table(&rows);
        return Ok(());
    }

    let opts = InstallOptions {
        cache: cache.clone(),
        force: args.force,
    };
    eprintln!(
        "installing {} client version(s) from {} into {}",
        specs.len(),
        manifest.path.display(),
        cache.root.join("clients").display()
    );
    let results = provision::install_with(&specs, &Progress::auto(), &opts);

    let mut rows = vec![row(["CLIENT", "VERSION", "STATUS", "PATH"])];
    let mut failures = Vec::new();
    for (spec, r) in specs.iter().zip(&results) {
        match r {
            Ok((i, outcome)) => {
                let status = match outcome {
                    Outcome::Cached => "cached".to_string(),
                    Outcome::Installed => format!("installed ({:.0}s)", i.stamp.install_seconds),
                };
                rows.push(row([
                    &spec.name,
                    &spec.version,
                    &status,
                    &i.bin_dir.display().to_string(),
                ]));
            }
            Err(e) => {
                let reason = e.reason();
                let first = reason.lines().next().unwrap_or("");
                let short: String = if first.chars().count() > 90 {
                    first.chars().take(89).chain(['…']).collect()
                } else {
                    first.to_string()
                };
                rows.push(row([
                    &spec.name,
                    &spec.version,
                    &format!("FAILED: {short}"),
                    "-",
                ]));
                failures.push((spec.to_string(), reason));
            }
        }
    }
    println!();
    print_table(&rows);
    if !failures.is_empty() {
        eprintln!();
        for (spec, reason) in &failures {
            eprintln!("{spec} failed: {reason}\n");
        }
        bail!(
            "{} of {} client(s) failed: {}",
            failures.len(),
            specs.len(),
            failures
                .iter()
                .map(|(s, _)| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

fn row<const N: usize>(cells: [&str; N]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

fn print_table(rows: &[Vec<String>]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[c]));
            }
        }
        println!("{}", line.trim_end());
    }
}
