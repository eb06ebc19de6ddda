//! Malformed scenario files fail with file:line:col, the field and a hint.

use harness::scenario::{self, Action, Count, Outcome};
use rstest::rstest;

const HOST: &str = r#"
[[host]]
name = "acr"
hostname = "myregistry.azurecr.io"
profile = { kind = "open" }
"#;

fn with_host(body: &str) -> String {
    format!("title = \"t\"\n{HOST}\n{body}")
}

#[test]
fn a_valid_scenario_parses_with_its_steps_and_expectations() {
    let text = with_host(
        r#"
[[step]]
action = "pull"
image = "{acr}/team/app:1.0"

[[step]]
action = "copy"
image = "{acr}/team/app:1.0"
to = "{acr}/copy/app:1.0"
expect = "failure"

[[expect.journal]]
request = { registry = "acr", path = "/oauth2/token", method = "POST" }
form = { grant_type = "refresh_token" }
count = "0"
"#,
    );
    let s = scenario::parse(&text, "scenarios/acr-pull.toml").unwrap();
    assert_eq!(s.id, "acr-pull");
    assert_eq!(s.steps.len(), 2);
    assert_eq!(*s.steps[1].action.get_ref(), Action::Copy);
    assert_eq!(s.steps[1].expect, Outcome::Failure);
    assert_eq!(s.expect.journal[0].count, Count::Exactly(0));
    assert_eq!(s.expect.journal[0].form["grant_type"], "refresh_token");
}

#[rstest]
#[case::unknown_top_level_key(
    "title = \"t\"\nbogus = 1\n[[host]]\nname=\"a\"\n",
    2,
    "bogus",
    "unknown field"
)]
#[case::missing_title(
    "[[step]]\naction = \"pull\"\nimage = \"{a}/r:1\"\n",
    1,
    "title",
    "missing field"
)]
#[case::unknown_action(
    &with_host("[[step]]\naction = \"teleport\"\nimage = \"{acr}/r:1\"\n"),
    9, "teleport", "unknown variant"
)]
#[case::unknown_step_key(
    &with_host("[[step]]\naction = \"pull\"\nimage = \"{acr}/r:1\"\nretries = 3\n"),
    11, "retries", "unknown field"
)]
#[case::bad_count(
    &with_host("[[step]]\naction = \"pull\"\nimage = \"{acr}/r:1\"\n[[expect.journal]]\ncount = \"lots\"\n"),
    12, "lots", "invalid count"
)]
#[case::unknown_host_placeholder(
    &with_host("[[step]]\naction = \"pull\"\nimage = \"{ecr}/r:1\"\n"),
    10, "step[0].image", "unknown host `{ecr}`"
)]
#[case::copy_without_to(
    &with_host("[[step]]\naction = \"copy\"\nimage = \"{acr}/r:1\"\n"),
    9, "step[0].to", "needs `to`"
)]
#[case::pull_without_image(&with_host("[[step]]\naction = \"pull\"\n"), 9, "step[0].image", "needs `image`")]
#[case::no_steps(&with_host(""), 1, "step", "missing field")]
#[case::no_registry(
    "title = \"t\"\n[[step]]\naction = \"pull\"\nimage = \"{a}/r:1\"\n",
    1,
    "host",
    "no registry"
)]
#[case::literal_reference(
    &with_host("[[step]]\naction = \"pull\"\nimage = \"docker.io/library/alpine\"\n"),
    10, "step[0].image", "names no fleet host"
)]
#[case::password_on_pull(
    &with_host("[[step]]\naction = \"pull\"\nimage = \"{acr}/r:1\"\npassword = \"x\"\n"),
    9, "step[0].username", "only apply to `login`"
)]
fn malformed_scenarios_name_file_line_field_and_hint(
    #[case] text: &str,
    #[case] line: usize,
    #[case] field: &str,
    #[case] message: &str,
) {
    let err = scenario::parse(text, "scenarios/broken.toml").unwrap_err();
    let shown = err.to_string();
    assert_eq!(err.origin, "scenarios/broken.toml", "{shown}");
    assert_eq!(err.line, line, "{shown}");
    assert!(
        err.field.contains(field),
        "field {:?} in {shown}",
        err.field
    );
    assert!(shown.contains(message), "{shown}");
    assert!(shown.contains("\n  hint: "), "{shown}");
    assert!(
        shown.starts_with(&format!("scenarios/broken.toml:{line}:")),
        "{shown}"
    );
}

#[test]
fn unknown_keys_list_the_valid_ones() {
    let err = scenario::parse(
        &with_host("[client]\ncredstore = \"x\"\n[[step]]\naction=\"pull\"\nimage=\"{acr}/r:1\"\n"),
        "s.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("creds_store"), "{err}");
    assert!(err.contains("cred_helpers"), "{err}");
}

#[test]
fn every_scenario_in_the_repository_parses() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let all = scenario::load_dir(&dir).unwrap_or_else(|errs| {
        panic!(
            "{}",
            errs.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    assert!(all.len() >= 20, "only {} scenarios", all.len());
}
