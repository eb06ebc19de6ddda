//! `cargo xtask run-scenarios`: install missing clients, run scenarios × clients, write
//! `report.json` and `matrix.md` into `--out` and print the matrix.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use harness::clients;
use harness::interim_fleet::InterimLauncher;
use harness::provision::{self, Manifest, Progress};
use harness::runner::{self, Column, Plan};
use reports::model::{ClientInfo, RunReport, SCHEMA_VERSION, ScenarioInfo, Verdict};

#[derive(clap::Args)]
pub struct Args {
    /// `name`, `name@version` (comma-separated allowed) or `name=PATH` for a dev build.
    #[arg(long = "client", value_name = "NAME[@VERSION]|NAME=PATH")]
    clients: Vec<String>,
    /// Only scenarios whose id matches this glob (`*` wildcards).
    #[arg(long, value_name = "GLOB")]
    scenario: Option<String>,
    #[arg(short = 'j', long, default_value_t = 2)]
    jobs: usize,
    #[arg(long, default_value = "reports/out")]
    out: PathBuf,
    #[arg(long, default_value = "scenarios")]
    scenarios_dir: PathBuf,
    /// Keep each cell's sandbox under `<out>/cells`.
    #[arg(long)]
    keep_sandboxes: bool,
}

fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (i, p) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(p) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(p);
        } else {
            let Some(at) = rest.find(p) else { return false };
            rest = &rest[at + p.len()..];
        }
    }
    true
}

fn column(manifest: &Manifest, request: &str) -> Result<Column> {
    if let Some((name, path)) = request.split_once('=') {
        let path = PathBuf::from(path);
        let mut binaries = BTreeMap::new();
        binaries.insert(name.to_string(), path.clone());
        let unavailable = (!path.exists()).then(|| format!("{} does not exist", path.display()));
        return Ok(Column {
            info: ClientInfo {
                id: format!("{name}@dev"),
                name: name.into(),
                version: "dev".into(),
                source: "path".into(),
                path: Some(path.display().to_string()),
                unavailable,
            },
            driver: name.into(),
            binaries,
        });
    }
    let spec = manifest.resolve(request).map_err(|e| anyhow!("{e}"))?;
    let mut info = ClientInfo {
        id: format!("{}@{}", spec.name, spec.version),
        name: spec.name.clone(),
        version: spec.version.clone(),
        source: "cache".into(),
        path: None,
        unavailable: None,
    };
    let mut binaries = BTreeMap::new();
    let installed = match provision::installed(&spec) {
        Some(i) => Ok(i),
        None => provision::install(std::slice::from_ref(&spec), &Progress::auto())
            .pop()
            .unwrap_or_else(|| {
                Err(provision::ProvisionError::Failed {
                    spec: spec.to_string(),
                    message: "no install result".into(),
                })
            })
            .map_err(|e| e.reason()),
    };
    match installed {
        Ok(i) => {
            binaries.extend(i.binaries.clone());
            info.path = binaries.get(&spec.name).map(|p| p.display().to_string());
        }
        Err(reason) => info.unavailable = Some(format!("install failed: {reason}")),
    }
    Ok(Column {
        info,
        driver: spec.name.clone(),
        binaries,
    })
}

fn now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("{secs}")
}

/// Markdown matrix (scenarios × clients); swapped for `reports::markdown` when it lands.
fn markdown(r: &RunReport) -> String {
    let mut s = format!(
        "| scenario | {} |\n|---|",
        r.clients
            .iter()
            .map(|c| c.id.as_str())
            .collect::<Vec<_>>()
            .join(" | ")
    );
    s.push_str(&"---|".repeat(r.clients.len()));
    s.push('\n');
    for sc in &r.scenarios {
        s.push_str(&format!("| {} |", sc.id));
        for c in &r.clients {
            let v = r.cell(&sc.id, &c.id).map_or("-", |c| c.verdict.as_str());
            s.push_str(&format!(" {v} |"));
        }
        s.push('\n');
    }
    let totals: Vec<String> = r
        .totals()
        .iter()
        .map(|(v, n)| format!("{v}: {n}"))
        .collect();
    s.push_str(&format!("\n{}\n", totals.join(", ")));
    s
}

pub fn run(args: Args) -> Result<()> {
    let manifest =
        Manifest::load(provision::default_manifest_path()).map_err(|e| anyhow!("{e}"))?;
    let requests: Vec<String> = if args.clients.is_empty() {
        clients::DRIVERS.iter().map(|s| s.to_string()).collect()
    } else {
        args.clients
            .iter()
            .flat_map(|c| c.split(','))
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect()
    };
    let columns = requests
        .iter()
        .map(|r| column(&manifest, r))
        .collect::<Result<Vec<_>>>()?;
    let mut scenarios = harness::scenario::load_dir(&args.scenarios_dir).map_err(|errs| {
        anyhow!(
            "{}",
            errs.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?;
    if let Some(g) = &args.scenario {
        scenarios.retain(|s| glob(g, &s.id));
    }
    if scenarios.is_empty() {
        bail!("no scenario matches");
    }
    let run_id = format!("run-{}-{}", now(), std::process::id());
    let helper_dir = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(PathBuf::from));
    let plan = Plan {
        scenarios,
        columns,
        jobs: args.jobs,
        work_dir: std::env::temp_dir().join("regcompat").join(&run_id),
        run_id: run_id.clone(),
        helper_dir,
        keep_sandboxes: args.keep_sandboxes,
    };
    let launcher = InterimLauncher::new().context("tokio runtime")?;
    let bar = indicatif::ProgressBar::new(0);
    let started = now();
    let cells = runner::run(&plan, &launcher, &bar);
    bar.finish_and_clear();
    let left = harness::sandbox::processes_of_run(&run_id);
    let report = RunReport {
        schema: SCHEMA_VERSION.into(),
        run_id,
        started,
        finished: now(),
        regcompat_version: env!("CARGO_PKG_VERSION").into(),
        clients: plan.columns.iter().map(|c| c.info.clone()).collect(),
        scenarios: plan
            .scenarios
            .iter()
            .map(|s| ScenarioInfo {
                id: s.id.clone(),
                title: s.title.clone(),
                file: s.file.clone(),
                description: s.description.clone(),
            })
            .collect(),
        cells,
    };
    std::fs::create_dir_all(&args.out)?;
    std::fs::write(
        args.out.join("report.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    let md = markdown(&report);
    std::fs::write(args.out.join("matrix.md"), &md)?;
    println!("{md}");
    for c in report.cells.iter().filter(|c| c.verdict != Verdict::Pass) {
        println!(
            "{} × {}: {} — {}",
            c.scenario, c.client, c.verdict, c.reason
        );
    }
    if !left.is_empty() {
        bail!("processes of this run are still alive: {left:?}");
    }
    if report.has_failures() {
        bail!(
            "the matrix has fail/error cells (see {})",
            args.out.display()
        );
    }
    Ok(())
}
