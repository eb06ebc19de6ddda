//! The summaries: `matrix.md` fits a GitHub comment (65,536 characters) whatever the run,
//! lists the cells that need attention before the grid, and leaves the evidence to
//! `matrix-full.md`; the console summary is short and plain.

mod common;

use reports::{KnownIssue, RunReport, Verdict};

const GITHUB_COMMENT_LIMIT: usize = 65_536;

/// `scenarios` × `clients` cells with long reasons and full evidence; `verdict(s, c)` says
/// what each cell is. Scenario and client ids are as long as real ones.
fn synthetic(
    scenarios: usize,
    clients: usize,
    verdict: impl Fn(usize, usize) -> Verdict,
) -> RunReport {
    let mut cells = Vec::new();
    let scenario_ids: Vec<String> = (0..scenarios)
        .map(|s| format!("acr-refresh-token-login-with-mirror-{s:03}"))
        .collect();
    let client_ids: Vec<String> = (0..clients)
        .map(|c| format!("nerdctl-{c:02}@2.0.{c}"))
        .collect();
    for (s, scenario) in scenario_ids.iter().enumerate() {
        for (c, client) in client_ids.iter().enumerate() {
            cells.push((scenario.as_str(), client.as_str(), verdict(s, c)));
        }
    }
    let mut report = common::report("20261123T113626Z-4242", &cells);
    for cell in &mut report.cells {
        cell.reason = format!(
            "{} — the client said: {}",
            cell.verdict,
            "error: GET https://myregistry.azurecr.io/v2/: UNAUTHORIZED: authentication required; "
                .repeat(20)
        );
        for step in &mut cell.steps {
            step.repro = format!(
                "HOME=/tmp/h DOCKER_CONFIG=/tmp/h/.docker {}",
                "x".repeat(1500)
            );
        }
        if cell.verdict == Verdict::KnownFailure {
            cell.known = Some(KnownIssue {
                reason: "sends Basic credentials to the token realm ".repeat(10),
                link: "https://github.com/containerd/nerdctl/issues/1234".into(),
                versions: ">=2.0.0, <2.0.3".into(),
            });
        }
    }
    report
}

fn assert_fits(md: &str) {
    assert!(
        md.chars().count() < GITHUB_COMMENT_LIMIT,
        "{} characters",
        md.chars().count()
    );
    assert!(md.len() < GITHUB_COMMENT_LIMIT, "{} bytes", md.len());
    assert!(
        md.len() <= reports::markdown::MAX_BYTES,
        "{} bytes",
        md.len()
    );
}

/// 60 scenarios × 16 clients, every verdict present, long reasons and repro lines.
#[test]
fn a_large_run_fits_a_github_comment_with_failures_before_the_grid() {
    let report = synthetic(60, 16, |s, c| match (s + c) % 9 {
        0..=2 => Verdict::Pass,
        3 => Verdict::KnownFailure,
        4 if s % 7 == 0 => Verdict::Fail,
        5 if s % 11 == 0 => Verdict::Error,
        6 if s % 13 == 0 => Verdict::Fixed,
        _ if c == 15 => Verdict::NotRun,
        _ => Verdict::NotApplicable,
    });
    let full = reports::markdown::render_full(&report);
    assert!(
        full.len() > GITHUB_COMMENT_LIMIT,
        "the full matrix is the big one"
    );
    let md = reports::markdown::render(&report);
    assert_fits(&md);
    let attention = md.find("### Needs attention").expect(&md);
    let first_fail = md.find("**fail** — ").expect(&md);
    let known = md.find("### Recorded known failures").expect(&md);
    let grid = md.find("| scenario |").expect(&md);
    assert!(
        attention < first_fail && first_fail < known && known < grid,
        "{md}"
    );
    // One line per cell: no repro line, reasons cut short.
    assert!(!md.contains("HOME=/tmp/h"), "no repro line");
    for line in md.lines().filter(|l| l.starts_with("- ")) {
        assert!(line.chars().count() < 400, "{line}");
    }
    // Every scenario has its grid row; not-applicable is a short mark.
    for s in 0..60 {
        assert!(
            md.contains(&format!("| acr-refresh-token-login-with-mirror-{s:03} |")),
            "row {s}"
        );
    }
    assert!(md.contains(" · |"), "not-applicable mark");
    // The not-run column is one line, not sixty.
    assert!(md.contains("**not-run** — `nerdctl-15@2.0.15` × "), "{md}");
}

#[test]
fn five_hundred_failures_are_cut_with_a_pointer_to_the_full_file() {
    let report = synthetic(50, 10, |_, _| Verdict::Fail);
    assert_eq!(report.cells.len(), 500);
    let md = reports::markdown::render(&report);
    assert_fits(&md);
    let more = md.find("- … ").expect(&md);
    let line = md[more..].lines().next().unwrap();
    assert!(line.ends_with(" more, see `matrix-full.md`"), "{line}");
    let shown = md.matches("**fail** — ").count();
    let left: usize = line
        .trim_start_matches("- … ")
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(shown + left, 500, "{line}");
    assert!(shown > 50, "as many as fit: {shown}");
    assert!(more < md.find("| scenario |").expect("the grid is still there"));
}

#[test]
fn even_a_huge_grid_stays_within_the_budget() {
    let report = synthetic(600, 20, |s, c| {
        if (s + c) % 3 == 0 {
            Verdict::Fail
        } else {
            Verdict::NotApplicable
        }
    });
    let md = reports::markdown::render(&report);
    assert_fits(&md);
    assert!(md.contains(" more scenarios, see `matrix-full.md`"), "{md}");
}

/// The default matrix's shape: 45 scenarios × 10 clients, ~200 pass, ~23 known failures,
/// the rest not-applicable, a few failures.
#[test]
fn a_default_sized_run_is_small() {
    let report = synthetic(45, 10, |s, c| match (s * 10 + c) % 20 {
        _ if s == 3 && c < 3 => Verdict::Fail,
        0..=8 => Verdict::Pass,
        9 if s % 2 == 0 => Verdict::KnownFailure,
        _ => Verdict::NotApplicable,
    });
    assert_eq!(report.cells.len(), 450);
    let md = reports::markdown::render(&report);
    assert_fits(&md);
    assert!(md.len() < 20_000, "{} bytes", md.len());
    if std::env::var_os("PEEK").is_some() {
        println!("{md}\n=====\n{}", reports::summary::render_text(&report));
    }
    println!(
        "matrix.md of a 450-cell run: {} bytes, {} characters (matrix-full.md: {} bytes)",
        md.len(),
        md.chars().count(),
        reports::markdown::render_full(&report).len()
    );
}

#[test]
fn the_console_summary_lists_failures_first_and_no_not_applicable_cell() {
    let report = synthetic(45, 10, |s, c| match (s + c) % 4 {
        0 => Verdict::Pass,
        1 if s == 5 => Verdict::Fail,
        2 if c == 9 => Verdict::NotRun,
        3 if s % 5 == 0 => Verdict::KnownFailure,
        _ => Verdict::NotApplicable,
    });
    let text = reports::summary::render_text(&report);
    let attention = text.find("Needs attention").expect(&text);
    let grid = text.find("Matrix (").expect(&text);
    assert!(attention < grid, "{text}");
    assert!(
        text.contains("\n  FAIL    acr-refresh-token-login-with-mirror-005 × "),
        "{text}"
    );
    assert!(
        !text.contains("not-applicable because"),
        "no not-applicable line: {text}"
    );
    assert!(!text.contains("HOME=/tmp/h"), "no repro line");
    assert!(
        !text.contains('|') && !text.contains("**"),
        "no Markdown: {text}"
    );
    // The not-run column is one line.
    assert_eq!(text.matches("NOT-RUN ").count(), 1, "{text}");
    for line in text.lines() {
        assert!(line.chars().count() <= 250, "{line}");
    }
    assert!(text.len() < 20_000, "{} bytes", text.len());
}
