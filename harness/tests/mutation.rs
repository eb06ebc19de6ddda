//! Mutation testing of the scenarios: every `scenarios/*.toml` runs through the real runner
//! (`run_cell`: sandbox, hosts file, CA, config.json, journal, verdict) with regcompat's
//! reference client, once `correct` and once per mutant. `correct` must pass every
//! scenario, and every scenario must fail for at least one mutant (its *kill set*): a
//! scenario nothing can fail proves nothing. The kill sets are kept in `docs/verdicts.md`
//! (`REGCOMPAT_BLESS=1` rewrites them).
//!
//! `REGCOMPAT_MUTATION_ONLY=<substring>` restricts the run to matching scenarios (the
//! document is then not compared). Needs root (the runner's mount namespaces); skipped
//! otherwise.

use harness::clients::refclient::RefClient;
use harness::runner::{CREDHELPER_BIN_ENV, ClientUnderTest, run_cell};
use harness::scenario::Scenario;
use refclient::Mutant;
use reports::{Cell, Verdict};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Cells run at once. Most of the test's wall time is cells waiting on a held or hung
/// answer (the fault scenarios: up to the refclient's 15 s request timeout, with no CPU
/// used), so more cells than cores are in flight.
const PARALLEL: usize = 8;
/// Cell indexes (loopback addresses) start here, clear of the other tests' cells.
const FIRST_INDEX: usize = 4096;

/// Scenarios no sensible mutant fails, awaiting a scenario revision: id → analysis.
const VACUOUS_PENDING_REVIEW: &[(&str, &str)] = &[];

/// Scenarios the `correct` client fails, awaiting a scenario revision: id → analysis.
const CORRECT_FAILS_PENDING_REVIEW: &[(&str, &str)] = &[];

const BLOCK_START: &str = "<!-- kill-set:start -->";
const BLOCK_END: &str = "<!-- kill-set:end -->";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn scenario_files() -> Vec<PathBuf> {
    let only = std::env::var("REGCOMPAT_MUTATION_ONLY").ok();
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_root().join("scenarios"))
        .expect("scenarios/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .filter(|p| {
            only.as_deref()
                .is_none_or(|o| harness::runner::stem(p).contains(o))
        })
        .collect();
    files.sort();
    files
}

fn client(mutant: Mutant) -> ClientUnderTest {
    ClientUnderTest {
        id: format!("refclient@{mutant}"),
        driver: Box::new(RefClient::new(mutant.as_str())),
        binary: Ok(PathBuf::from(env!("CARGO_BIN_EXE_regcompat-refclient"))),
        tools: Vec::new(),
    }
}

/// Runs every scenario × every behaviour, `PARALLEL` at a time.
async fn run_all(files: &[PathBuf], scratch: &Path) -> BTreeMap<(String, Mutant), Cell> {
    let clients: Arc<BTreeMap<Mutant, ClientUnderTest>> =
        Arc::new(Mutant::all().iter().map(|m| (*m, client(*m))).collect());
    let permits = Arc::new(tokio::sync::Semaphore::new(PARALLEL));
    let mut tasks = tokio::task::JoinSet::new();
    let mut index = FIRST_INDEX;
    for file in files {
        for m in Mutant::all() {
            let (file, m, clients, permits) = (file.clone(), *m, clients.clone(), permits.clone());
            let scratch = scratch.to_owned();
            let i = index;
            index += 1;
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await.expect("semaphore");
                let cell = run_cell(&file, &clients[&m], i, &scratch).await;
                (harness::runner::stem(&file), m, cell)
            });
        }
    }
    let mut cells = BTreeMap::new();
    while let Some(done) = tasks.join_next().await {
        let (scenario, m, cell) = done.expect("a cell task panicked");
        cells.insert((scenario, m), cell);
    }
    cells
}

fn kill_table(files: &[PathBuf], cells: &BTreeMap<(String, Mutant), Cell>) -> String {
    let mut out = String::from("| scenario | rule(s) | kill set |\n|---|---|---|\n");
    for file in files {
        let id = harness::runner::stem(file);
        let rules = Scenario::load(file)
            .map(|s| {
                s.rules
                    .iter()
                    .map(|r| format!("`{}`", r.get_ref()))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let killers: Vec<&str> = Mutant::all()[1..]
            .iter()
            .filter(|m| cells[&(id.clone(), **m)].verdict == Verdict::Fail)
            .map(|m| m.as_str())
            .collect();
        let mut kill = if killers.is_empty() {
            "**none**".to_owned()
        } else {
            killers
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if cells[&(id.clone(), Mutant::Correct)].verdict != Verdict::Pass {
            kill = format!("(`correct` fails: pending review) {kill}");
        }
        let rules = if rules.is_empty() {
            "—".into()
        } else {
            rules
        };
        out.push_str(&format!("| `{id}` | {rules} | {kill} |\n"));
    }
    out
}

fn verdicts_doc_with(doc: &str, table: &str) -> String {
    let block = format!("{BLOCK_START}\n{table}{BLOCK_END}");
    match (doc.find(BLOCK_START), doc.find(BLOCK_END)) {
        (Some(a), Some(b)) if a < b => {
            format!("{}{block}{}", &doc[..a], &doc[b + BLOCK_END.len()..])
        }
        _ => format!("{}\n{block}\n", doc.trim_end()),
    }
}

const DOC_HEADER: &str = "# Verdicts and the scenarios' kill sets\n\n\
A scenario proves something only if a client can fail it. `harness/tests/mutation.rs` runs \
every scenario through the real runner with regcompat's reference client \
(`refclient/`, `regcompat-refclient`): once `correct` (the verdict rule: distribution spec, \
docker token auth, docker config.json semantics, a credential never goes to another host) and \
once per mutant (one deliberate deviation each, `regcompat-refclient mutants` lists them). \
The *kill set* of a scenario is the mutants whose cell is `fail`. The table below is \
generated; run `REGCOMPAT_BLESS=1 cargo test -p harness --test mutation` to rewrite it.\n";

#[test]
fn every_scenario_passes_for_correct_and_fails_for_some_mutant() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: the runner needs root (mount namespaces)");
        return;
    }
    // SAFETY: the only test of this binary sets it before any thread of the runtime exists.
    unsafe {
        std::env::set_var(
            CREDHELPER_BIN_ENV,
            env!("CARGO_BIN_EXE_docker-credential-regcompat"),
        );
    }
    let files = scenario_files();
    assert!(!files.is_empty(), "no scenario matches");
    let scratch = tempfile::tempdir().expect("scratch dir");
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(PARALLEL)
        .enable_all()
        .build()
        .expect("runtime");
    let cells = rt.block_on(run_all(&files, scratch.path()));
    let elapsed = started.elapsed();
    eprintln!(
        "mutation test: {} cells ({} scenarios × {} behaviours) in {:.1} s",
        cells.len(),
        files.len(),
        Mutant::all().len(),
        elapsed.as_secs_f64()
    );

    let mut problems = Vec::new();
    for ((scenario, m), cell) in &cells {
        if !matches!(cell.verdict, Verdict::Pass | Verdict::Fail) {
            problems.push(format!(
                "{scenario} × {m}: {:?} ({})",
                cell.verdict, cell.reason
            ));
        }
    }
    for file in &files {
        let id = harness::runner::stem(file);
        let correct = &cells[&(id.clone(), Mutant::Correct)];
        let pending = CORRECT_FAILS_PENDING_REVIEW.iter().any(|(s, _)| *s == id);
        match (correct.verdict == Verdict::Pass, pending) {
            (false, false) => problems.push(format!(
                "{id}: `correct` does not pass: {} (fix the client, or list the scenario in \
                 CORRECT_FAILS_PENDING_REVIEW with an analysis)",
                correct.reason
            )),
            (true, true) => problems.push(format!(
                "{id}: `correct` passes now; remove it from CORRECT_FAILS_PENDING_REVIEW"
            )),
            _ => {}
        }
        let killed = Mutant::all()[1..]
            .iter()
            .any(|m| cells[&(id.clone(), *m)].verdict == Verdict::Fail);
        let vacuous = VACUOUS_PENDING_REVIEW.iter().any(|(s, _)| *s == id);
        match (killed, vacuous) {
            (false, false) => problems.push(format!(
                "{id}: no mutant fails it (add a mutant, sharpen the scenario, or list it in \
                 VACUOUS_PENDING_REVIEW with an analysis)"
            )),
            (true, true) => problems.push(format!(
                "{id}: killed now; remove it from VACUOUS_PENDING_REVIEW"
            )),
            _ => {}
        }
    }

    let table = kill_table(&files, &cells);
    eprintln!("{table}");
    let mut details = String::new();
    for ((scenario, m), cell) in &cells {
        details.push_str(&format!(
            "{scenario} × {m}: {:?}: {}\n",
            cell.verdict, cell.reason
        ));
    }
    if let Some(dir) = std::env::var_os("REGCOMPAT_MUTATION_LOG") {
        let _ = std::fs::write(PathBuf::from(dir), &details);
    }
    if std::env::var_os("REGCOMPAT_MUTATION_ONLY").is_none() {
        let path = repo_root().join("docs/verdicts.md");
        let doc = std::fs::read_to_string(&path).unwrap_or_else(|_| DOC_HEADER.to_owned());
        let wanted = verdicts_doc_with(&doc, &table);
        if wanted != doc {
            if std::env::var_os("REGCOMPAT_BLESS").is_some() {
                std::fs::write(&path, &wanted).expect("writing docs/verdicts.md");
            } else {
                problems.push(
                    "docs/verdicts.md's kill-set block is out of date: run \
                     `REGCOMPAT_BLESS=1 cargo test -p harness --test mutation` and commit it"
                        .to_owned(),
                );
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n\nall cells:\n{details}",
        problems.join("\n")
    );
}
