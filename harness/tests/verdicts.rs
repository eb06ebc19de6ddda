//! The verdict engine itself, without any client: globs, counts, journal matching, step
//! outcomes (a clean failure is an exit, not a hang; a failing preparation command never
//! satisfies an expected failure), journal checks, and the cell verdict they give.

use fake_registry::journal::{AuthRecord, Entry};
use harness::runner::{check, judge, step_met};
use harness::scenario::{Count, Scenario, glob};
use reports::{CheckRecord, StepRecord, Verdict};
use rstest::rstest;
use std::collections::BTreeMap;

fn step(expected: &str, exit_code: Option<i32>, timed_out: bool) -> StepRecord {
    StepRecord {
        step: 0,
        action: "pull".into(),
        argv: vec!["/cache/crane".into(), "pull".into()],
        repro: String::new(),
        exit_code,
        timed_out,
        duration_ms: 1,
        stdout_tail: String::new(),
        stderr_tail: "Error: GET https://r/v2/: UNAUTHORIZED: authentication required\n".into(),
        expected: expected.into(),
        preparation: false,
    }
}

fn passed(description: &str) -> CheckRecord {
    CheckRecord {
        description: description.into(),
        passed: true,
        detail: String::new(),
    }
}

#[rstest]
#[case::success_exit_0("success", Some(0), false, true)]
#[case::success_exit_1("success", Some(1), false, false)]
#[case::success_killed("success", None, true, false)]
#[case::failure_exit_1("failure", Some(1), false, true)]
#[case::failure_exit_0("failure", Some(0), false, false)]
#[case::failure_is_not_a_hang("failure", None, true, false)]
#[case::failure_is_not_a_spawn_error("failure", None, false, false)]
#[case::any_exit_0("any", Some(0), false, true)]
#[case::any_exit_1("any", Some(3), false, true)]
#[case::any_is_not_a_hang("any", None, true, false)]
fn a_step_is_met_only_by_the_outcome_it_expects(
    #[case] expected: &str,
    #[case] exit_code: Option<i32>,
    #[case] timed_out: bool,
    #[case] met: bool,
) {
    assert_eq!(step_met(&step(expected, exit_code, timed_out)), met);
}

#[test]
fn a_failing_preparation_command_never_satisfies_an_expected_failure() {
    let mut prep = step("success", Some(1), false);
    prep.preparation = true;
    prep.argv = vec!["/cache/docker".into(), "build".into()];
    assert!(!step_met(&prep));
    let (verdict, reason) = judge(&[prep], &[passed("talked")]);
    assert_eq!(verdict, Verdict::Fail);
    assert!(
        reason.starts_with("preparation of `pull` (`docker`)"),
        "{reason}"
    );
}

#[test]
fn a_wrong_outcome_fails_the_cell_and_quotes_the_client() {
    let (verdict, reason) = judge(&[step("success", Some(1), false)], &[passed("talked")]);
    assert_eq!(verdict, Verdict::Fail);
    assert!(
        reason.starts_with("`pull` expected success, got failure (exit 1): Error: GET"),
        "{reason}"
    );
    let (verdict, reason) = judge(&[step("failure", Some(0), false)], &[passed("talked")]);
    assert_eq!(verdict, Verdict::Fail);
    assert!(reason.contains("expected failure, got success"), "{reason}");
}

#[test]
fn a_failed_journal_check_fails_a_cell_whose_steps_went_as_expected() {
    let failed = CheckRecord {
        description: "the token request carried the SP's credentials".into(),
        passed: false,
        detail: "0 matching request(s), wanted >=1".into(),
    };
    let (verdict, reason) = judge(
        &[step("success", Some(0), false)],
        &[passed("talked"), failed],
    );
    assert_eq!(verdict, Verdict::Fail);
    assert!(reason.starts_with("the token request carried"), "{reason}");
}

#[test]
fn steps_and_checks_that_hold_pass_and_no_command_is_no_pass() {
    let (verdict, _) = judge(&[step("success", Some(0), false)], &[passed("a")]);
    assert_eq!(verdict, Verdict::Pass);
    let (verdict, reason) = judge(&[], &[passed("a")]);
    assert_eq!(
        (verdict, reason.as_str()),
        (Verdict::Fail, "no client command ran")
    );
}

#[rstest]
#[case("/v2/*/manifests/*", "/v2/team/app/manifests/1", true)]
#[case("/v2/*/manifests/*", "/v2/team/app/blobs/sha256:ab", false)]
#[case("/v2/", "/v2/", true)]
#[case("/v2/", "/v2/x", false)]
#[case("*", "", true)]
#[case("ns=*", "ns=registry.example.com", true)]
#[case("ns=*", "", false)]
#[case("a*b*c", "abc", true)]
#[case("a*b*c", "acb", false)]
fn globs(#[case] pattern: &str, #[case] text: &str, #[case] matches: bool) {
    assert_eq!(glob(pattern, text), matches);
}

#[test]
fn counts() {
    assert!(Count::parse(">=1").unwrap().holds(1));
    assert!(!Count::parse(">=1").unwrap().holds(0));
    assert!(Count::parse("<=2").unwrap().holds(2));
    assert!(!Count::parse("<=2").unwrap().holds(3));
    assert!(Count::parse("0").unwrap().holds(0));
    assert!(!Count::parse("0").unwrap().holds(1));
    assert!(Count::parse("many").is_err());
}

fn entry(seq: u64, method: &str, path: &str, status: u16, auth: AuthRecord) -> Entry {
    Entry {
        seq,
        time: String::new(),
        duration_ms: 0.0,
        registry: "acr".into(),
        host: "myregistry.azurecr.io".into(),
        method: method.into(),
        path: path.into(),
        query: None,
        request_headers: BTreeMap::new(),
        auth,
        form: BTreeMap::new(),
        status,
        response_headers: BTreeMap::new(),
        notes: vec![],
        leak: None,
        fault: None,
    }
}

fn auth(scheme: &str, principal: Option<&str>, verdict: &str) -> AuthRecord {
    AuthRecord {
        scheme: scheme.into(),
        principal: principal.map(Into::into),
        verdict: Some(verdict.into()),
        ..AuthRecord::default()
    }
}

const SCENARIO: &str = r#"
title = "t"
rules = ["clean-failure"]
[[host]]
name = "acr"
hostname = "myregistry.azurecr.io"
[host.profile]
kind = "acr"
[[step]]
action = "pull"
image = "{acr}/a:1"
expect = "failure"
[[expect]]
what = "the token endpoint refused the wrong credential"
path = "/oauth2/token"
auth = "bad-credentials"
status = 401
[[expect]]
what = "no manifest was served"
path = "/v2/*/manifests/*"
status = 200
count = "0"
[[expect]]
what = "nothing leaked"
no_leaks = true
"#;

#[test]
fn journal_checks_match_on_every_field_they_name() {
    let s = Scenario::parse(SCENARIO, "s.toml").unwrap();
    let challenge = entry(1, "GET", "/v2/", 401, auth("none", None, "challenged"));
    let refused = entry(
        2,
        "GET",
        "/oauth2/token",
        401,
        auth("basic", None, "bad-credentials"),
    );
    // The anonymous challenge alone is not the token endpoint refusing the credential.
    assert!(!s.expectations[0].matches(&challenge));
    assert!(s.expectations[0].matches(&refused));
    assert!(!check(&s.expectations[0], std::slice::from_ref(&challenge)).passed);
    assert!(check(&s.expectations[0], &[challenge.clone(), refused.clone()]).passed);

    let served = entry(
        3,
        "GET",
        "/v2/a/manifests/1",
        200,
        auth("bearer", Some("sp"), "ok"),
    );
    assert!(check(&s.expectations[1], std::slice::from_ref(&refused)).passed);
    let c = check(&s.expectations[1], &[refused.clone(), served.clone()]);
    assert!(!c.passed);
    assert!(
        c.detail.contains("#3 GET /v2/a/manifests/1 → 200"),
        "{}",
        c.detail
    );

    let mut leaked = served;
    leaked.leak = Some("credential of principal dev of registry gitlab presented to acr".into());
    assert!(check(&s.expectations[2], std::slice::from_ref(&refused)).passed);
    let c = check(&s.expectations[2], &[refused, leaked]);
    assert!(!c.passed);
    assert!(
        c.detail.starts_with("#3 credential of principal dev"),
        "{}",
        c.detail
    );
}

#[test]
fn a_scenario_names_only_rules_that_exist() {
    let text = SCENARIO.replace("clean-failure", "be-nice");
    let e = Scenario::parse(&text, "s.toml").unwrap_err();
    assert_eq!(e.field, "rules[0]");
    assert!(
        e.to_string().contains("no rule is named \"be-nice\""),
        "{e}"
    );
}

const SETUP_LOGIN: &str = r#"
title = "t"
rules = ["credential-for-its-registry"]
[[host]]
name = "reg"
hostname = "registry.example.com"
[host.profile]
kind = "bearer"
[[host.principal]]
name = "alice"
kind = "user"
username = "alice"
secret = "s3cret"
[[step]]
action = "login"
registry = "reg"
principal = "alice"
setup = true
expect = "success"
[[step]]
action = "pull"
image = "{reg}/a:1"
expect = "success"
"#;

#[test]
fn a_setup_login_becomes_the_credential_docker_login_stores_for_a_client_without_login() {
    let s = Scenario::parse(SETUP_LOGIN, "s.toml").unwrap();
    assert!(s.client.auths.is_empty());
    let without_login = s.with_setup_logins_as_config();
    let actions: Vec<&str> = without_login
        .steps
        .iter()
        .map(|s| s.action.as_str())
        .collect();
    assert_eq!(actions, ["pull"]);
    assert_eq!(
        without_login
            .client
            .auths
            .get("reg")
            .map(|p| p.get_ref().as_str()),
        Some("alice")
    );

    // A login under test (no `setup`) stays: a client without login cannot run it.
    let text = SETUP_LOGIN.replace("setup = true\n", "");
    let under_test = Scenario::parse(&text, "s.toml")
        .unwrap()
        .with_setup_logins_as_config();
    assert_eq!(under_test.steps.len(), 2);
    assert!(under_test.client.auths.is_empty());
}

#[test]
fn setup_is_only_for_logins_that_succeed_with_the_principals_secret() {
    for (from, to) in [
        (
            "setup = true\nexpect = \"success\"",
            "setup = true\nexpect = \"any\"",
        ),
        ("setup = true\n", "setup = true\npassword = \"wrong\"\n"),
    ] {
        let text = SETUP_LOGIN.replacen(from, to, 1);
        let e = Scenario::parse(&text, "s.toml").unwrap_err();
        assert_eq!(e.field, "step[0].setup", "{text}");
        assert!(e.line > 0);
    }
    let text = SETUP_LOGIN.replace(
        "image = \"{reg}/a:1\"\nexpect",
        "image = \"{reg}/a:1\"\nsetup = true\nexpect",
    );
    let e = Scenario::parse(&text, "s.toml").unwrap_err();
    assert_eq!(e.field, "step[1].setup");
    assert!(e.to_string().contains("`setup` is for logins"), "{e}");
}

#[test]
fn a_query_matches_whether_the_client_escapes_it_or_not() {
    let text = SCENARIO.replace(
        "path = \"/oauth2/token\"\n",
        "path = \"/oauth2/token\"\nquery = \"*scope=repository%3Apath%2Fimage%3Apull*\"\n",
    );
    let s = Scenario::parse(&text, "s.toml").unwrap();
    let with_query = |q: &str| {
        let mut e = entry(
            1,
            "GET",
            "/oauth2/token",
            401,
            auth("basic", None, "bad-credentials"),
        );
        e.query = Some(q.into());
        e
    };
    // Escaped (docker, buildkit) and unescaped (Jib) scopes are the same query.
    assert!(s.expectations[0].matches(&with_query(
        "service=x&scope=repository%3Apath%2Fimage%3Apull"
    )));
    assert!(s.expectations[0].matches(&with_query("service=x&scope=repository:path/image:pull")));
    assert!(!s.expectations[0].matches(&with_query("service=x&scope=repository:path/other:pull")));
}
