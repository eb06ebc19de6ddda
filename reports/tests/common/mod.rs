//! Reports used by the tests: small, built in code, every field meaningful.
#![allow(dead_code)] // each test binary uses a different part of this module

use reports::{
    Cell, CheckRecord, ClientInfo, RunReport, SCHEMA_VERSION, ScenarioInfo, StepRecord, Verdict,
};
use serde_json::json;

pub const CRANE: &str = "crane@0.22.1";
pub const SKOPEO: &str = "skopeo@1.18.0";
pub const DOCKER: &str = "docker@28.0.1";

pub fn client(id: &str) -> ClientInfo {
    let (name, version) = id.split_once('@').unwrap_or((id, "dev"));
    ClientInfo {
        id: id.into(),
        name: name.into(),
        version: version.into(),
        source: "cache".into(),
        path: Some(format!("/cache/bin/{name}")),
        unavailable: None,
    }
}

pub fn scenario(id: &str) -> ScenarioInfo {
    ScenarioInfo {
        id: id.into(),
        title: format!("Title of {id}"),
        file: format!("scenarios/{id}.toml"),
        description: String::new(),
        rules: vec![],
        fault_kind: None,
    }
}

/// A cell with evidence: one step, two checks (one failed unless the cell passed), one
/// journal entry.
pub fn cell(scenario: &str, client: &str, verdict: Verdict) -> Cell {
    let ran = matches!(verdict, Verdict::Pass | Verdict::Fail);
    Cell {
        scenario: scenario.into(),
        variant: None,
        client: client.into(),
        verdict,
        reason: format!("{verdict} because of {scenario} on {client}"),
        duration_ms: 1234,
        steps: if ran {
            vec![StepRecord {
                step: 0,
                action: "pull".into(),
                argv: vec![
                    "crane".into(),
                    "pull".into(),
                    format!("myregistry.azurecr.io/{scenario}:v1"),
                ],
                repro: format!(
                    "HOME=/tmp/h crane pull myregistry.azurecr.io/{scenario}:v1 out.tar"
                ),
                exit_code: Some(if verdict == Verdict::Pass { 0 } else { 1 }),
                timed_out: false,
                duration_ms: 1200,
                stdout_tail: "pulling".into(),
                stderr_tail: format!("Error: UNAUTHORIZED for {scenario}"),
                expected: "success".into(),
                preparation: false,
            }]
        } else {
            vec![]
        },
        checks: if ran {
            vec![
                CheckRecord {
                    description: "the client asked for a token".into(),
                    passed: true,
                    detail: "#2".into(),
                },
                CheckRecord {
                    description: "the pull succeeded".into(),
                    passed: verdict == Verdict::Pass,
                    detail: "exit 1".into(),
                },
            ]
        } else {
            vec![]
        },
        journal: if ran {
            vec![
                json!({
                    "seq": 1, "time": "2025-01-01T00:00:00Z", "duration_ms": 0.5,
                    "registry": "acr", "host": "myregistry.azurecr.io", "method": "GET",
                    "path": "/v2/", "request_headers": {}, "auth": {"scheme": "none"},
                    "status": 401, "response_headers": {}
                }),
                json!({
                    "seq": 2, "time": "2025-01-01T00:00:01Z", "duration_ms": 0.5,
                    "registry": "acr", "host": "myregistry.azurecr.io", "method": "GET",
                    "path": "/oauth2/token", "query": "scope=repository:a:pull",
                    "request_headers": {}, "auth": {"scheme": "basic", "username": "app", "principal": "sp-pull"},
                    "status": 200, "response_headers": {}, "notes": ["refresh token used"],
                    "leak": "token of ecr"
                }),
            ]
        } else {
            vec![]
        },
        artifacts: vec![],
        known: None,
        network: None,
    }
}

/// A report whose scenarios and clients are exactly those the cells name, in first-seen order.
pub fn report(run_id: &str, cells: &[(&str, &str, Verdict)]) -> RunReport {
    let mut scenarios: Vec<ScenarioInfo> = vec![];
    let mut clients: Vec<ClientInfo> = vec![];
    for (s, c, _) in cells {
        if !scenarios.iter().any(|x| x.id == *s) {
            scenarios.push(scenario(s));
        }
        if !clients.iter().any(|x| x.id == *c) {
            clients.push(client(c));
        }
    }
    RunReport {
        schema: SCHEMA_VERSION.into(),
        run_id: run_id.into(),
        started: "2025-01-01T00:00:00Z".into(),
        finished: "2025-01-01T00:10:00Z".into(),
        regcompat_version: "0.1.0".into(),
        clients,
        scenarios,
        cells: cells.iter().map(|(s, c, v)| cell(s, c, *v)).collect(),
        shard: None,
    }
}

/// Three clients × three scenarios with every verdict and one missing cell; docker unavailable.
///
/// | scenario  | crane          | skopeo         | docker   |
/// |-----------|----------------|----------------|----------|
/// | login     | pass           | fail           | not-run  |
/// | pull      | pass           | not-applicable | not-run  |
/// | push      | error          | (missing)      | not-run  |
pub fn sample() -> RunReport {
    let mut r = report(
        "20250101T000000Z",
        &[
            ("login", CRANE, Verdict::Pass),
            ("login", SKOPEO, Verdict::Fail),
            ("login", DOCKER, Verdict::NotRun),
            ("pull", CRANE, Verdict::Pass),
            ("pull", SKOPEO, Verdict::NotApplicable),
            ("pull", DOCKER, Verdict::NotRun),
            ("push", CRANE, Verdict::Error),
            ("push", DOCKER, Verdict::NotRun),
        ],
    );
    if let Some(docker) = r.clients.iter_mut().find(|c| c.id == DOCKER) {
        docker.unavailable = Some("docker needs a daemon and root".into());
        docker.path = None;
    }
    r
}
