//! Malformed scenario files: each error names the file, line, column and field, with a hint.

use harness::scenario::Scenario;
use rstest::rstest;
use std::path::Path;

const HOST: &str = "[[host]]\nname = \"reg\"\nhostname = \"registry.example.test\"\nprofile = { kind = \"open\" }\n";

fn parse(text: &str) -> Result<Scenario, harness::scenario::ScenarioError> {
    Scenario::parse(text, Path::new("scenarios/broken.toml"))
}

#[test]
fn a_good_scenario_parses() {
    let text = format!(
        "[scenario]\ntitle = \"t\"\n{HOST}[[host.principal]]\nname = \"u\"\nusername = \"u\"\nsecret = \"secret-1\"\ngrants = [\"**:pull\"]\n[docker_config.auths.\"{{reg}}\"]\nprincipal = \"reg/u\"\n[[step]]\naction = \"pull\"\nimage = \"{{reg}}/a/b:1\"\n[[expect.journal]]\nthat = \"x\"\nrequest = {{ method = \"GET|HEAD\", path = \"/v2/*\" }}\n"
    );
    let s = parse(&text).unwrap();
    assert_eq!(s.id, "broken");
    assert_eq!(s.fleet.hosts.len(), 1);
    assert_eq!(s.steps.len(), 1);
    assert!(s.expect.no_leaks);
}

#[rstest]
// 1 TOML syntax error
#[case("[scenario\ntitle = \"t\"\n", 1, "", "syntax")]
// 2 unknown top-level key, with the valid keys listed
#[case("[scenario]\ntitle = \"t\"\n[stepz]\n", 3, "stepz", "`scenario`")]
// 3 missing title
#[case(
    "[scenario]\ndescription = \"d\"\n",
    1,
    "scenario.title",
    "add the field"
)]
// 4 unknown action
#[case(
    "[scenario]\ntitle = \"t\"\n[[step]]\naction = \"fetch\"\n",
    4,
    "step[0].action",
    "login"
)]
// 5 a host error is reported at the host's line, through the fleet's parser
#[case(
    "[scenario]\ntitle = \"t\"\n[[host]]\nname = \"reg\"\nhostname = \"registry.example.test\"\naddress = \"10.1.2.3\"\nprofile = { kind = \"open\" }\n",
    6,
    "host[0].address",
    "127.0.0.0/8"
)]
// 6 no host at all
#[case(
    "[scenario]\ntitle = \"t\"\n[[step]]\naction = \"pull\"\nimage = \"{reg}/a:1\"\n",
    0,
    "host",
    "[[host]]"
)]
// 7 a reference not starting with a host template
#[case(&format!("[scenario]\ntitle = \"t\"\n{HOST}[[step]]\naction = \"pull\"\nimage = \"docker.io/library/alpine:3\"\n"), 9, "step[0].image", "reach the fake registry")]
// 8 a template naming no host
#[case(&format!("[scenario]\ntitle = \"t\"\n{HOST}[[step]]\naction = \"pull\"\nimage = \"{{acr}}/a:1\"\n"), 9, "step[0].image", "reg")]
// 9 a field that does not apply to the action
#[case(&format!("[scenario]\ntitle = \"t\"\n{HOST}[[step]]\naction = \"pull\"\nimage = \"{{reg}}/a:1\"\nfrom = \"{{reg}}/b:1\"\n"), 10, "step[0].from", "takes: image, platform")]
// 10 login without credentials
#[case(&format!("[scenario]\ntitle = \"t\"\n{HOST}[[step]]\naction = \"login\"\nregistry = \"reg\"\n"), 7, "step[0].principal", "principal")]
// 11 unknown principal
#[case(&format!("[scenario]\ntitle = \"t\"\n{HOST}[[step]]\naction = \"login\"\nregistry = \"reg\"\nprincipal = \"reg/nobody\"\n"), 10, "step[0].principal", "no principal")]
// 12 bad count
#[case(&format!("[scenario]\ntitle = \"t\"\n{HOST}[[step]]\naction = \"pull\"\nimage = \"{{reg}}/a:1\"\n[[expect.journal]]\nthat = \"x\"\ncount = \"lots\"\n"), 12, "expect.journal[0].count", ">=1")]
// 13 a credsStore other than the harness's helper
#[case(&format!("[scenario]\ntitle = \"t\"\n{HOST}[docker_config]\ncredsStore = \"desktop\"\n[[step]]\naction = \"pull\"\nimage = \"{{reg}}/a:1\"\n"), 8, "docker_config.credsStore", "regcompat")]
// 14 unknown key inside a journal expectation
#[case(&format!("[scenario]\ntitle = \"t\"\n{HOST}[[step]]\naction = \"pull\"\nimage = \"{{reg}}/a:1\"\n[[expect.journal]]\nthat = \"x\"\nstatuss = 200\n"), 12, "expect.journal[0].statuss", "`status`")]
// 15 wrong type
#[case(&format!("[scenario]\ntitle = \"t\"\ntimeout = \"2m\"\n{HOST}"), 3, "scenario.timeout", "type")]
// 16 unknown auth scheme
#[case(&format!("[scenario]\ntitle = \"t\"\n{HOST}[[step]]\naction = \"pull\"\nimage = \"{{reg}}/a:1\"\n[[expect.journal]]\nthat = \"x\"\nauth = {{ scheme = \"digest\" }}\n"), 12, "expect.journal[0].auth.scheme", "none, basic or bearer")]
// 17 an auths entry with two kinds of credentials
#[case(&format!("[scenario]\ntitle = \"t\"\n{HOST}[[host.principal]]\nname = \"u\"\nusername = \"u\"\n[docker_config.auths.\"{{reg}}\"]\nprincipal = \"reg/u\"\nusername = \"x\"\n[[step]]\naction = \"pull\"\nimage = \"{{reg}}/a:1\"\n"), 10, "docker_config.auths.{reg}", "exactly one")]
// 18 both a fleet file and inline hosts
#[case(&format!("fleet = \"fleets/x.toml\"\n[scenario]\ntitle = \"t\"\n{HOST}"), 1, "fleet", "keep one")]
fn malformed_scenarios_name_file_line_field_and_hint(
    #[case] text: &str,
    #[case] line: usize,
    #[case] field: &str,
    #[case] hint_or_message: &str,
) {
    let e = parse(text).unwrap_err();
    let shown = e.to_string();
    assert_eq!(e.file, "scenarios/broken.toml", "{shown}");
    if line > 0 {
        assert_eq!(e.line, line, "{shown}");
        assert!(
            shown.starts_with(&format!("scenarios/broken.toml:{line}:")),
            "{shown}"
        );
    }
    assert_eq!(e.field, field, "{shown}");
    assert!(!e.hint.is_empty(), "{shown}");
    assert!(shown.contains(hint_or_message), "{shown}");
}

#[test]
fn every_scenario_in_the_repository_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let files = harness::scenario::discover(&dir, None).unwrap();
    assert!(files.len() >= 20, "only {} scenarios", files.len());
    for f in files {
        Scenario::load(&f).unwrap_or_else(|e| panic!("{e}"));
    }
}
