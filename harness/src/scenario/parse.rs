//! Loading and validating scenario files, with `file:line:col: field` errors.

use std::ops::Range;
use std::path::Path;

use super::model::{Action, Scenario};

/// A scenario that cannot be used, located in its file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}:{line}:{col}: field `{field}`: {message}\n  hint: {hint}")]
pub struct ScenarioError {
    pub origin: String,
    pub line: usize,
    pub col: usize,
    pub field: String,
    pub message: String,
    pub hint: String,
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(offset, |i| offset - i - 1) + 1;
    (line, col)
}

fn error_at(
    text: &str,
    origin: &str,
    span: Option<Range<usize>>,
    field: &str,
    message: impl Into<String>,
    hint: impl Into<String>,
) -> ScenarioError {
    let (line, col) = span.map_or((1, 1), |s| line_col(text, s.start));
    ScenarioError {
        origin: origin.to_string(),
        line,
        col,
        field: field.to_string(),
        message: message.into(),
        hint: hint.into(),
    }
}

/// The hint for a TOML/serde message; the message already lists valid keys or variants.
fn hint_for(message: &str) -> &'static str {
    if message.contains("unknown field") {
        "remove or rename the key; the valid keys are listed above"
    } else if message.contains("unknown variant") {
        "use one of the listed values"
    } else if message.contains("missing field") {
        "add the required key to this table"
    } else if message.contains("invalid type") {
        "check the value's type (string in quotes, number, array, table)"
    } else if message.contains("invalid count") {
        "write the count as a string, e.g. count = \">=1\""
    } else {
        "see scenarios/README.md for the scenario format"
    }
}

/// The key a serde error points at: the backticked name in the message, else the text
/// under the span.
fn field_of(message: &str, text: &str, span: Option<&Range<usize>>) -> String {
    for marker in ["unknown field `", "missing field `"] {
        if let Some(rest) = message.split(marker).nth(1)
            && let Some(end) = rest.find('`')
        {
            return rest[..end].to_string();
        }
    }
    span.and_then(|s| text.get(s.clone()))
        .map(|t| t.lines().next().unwrap_or("").trim().to_string())
        .filter(|t| !t.is_empty() && t.len() < 60)
        .unwrap_or_else(|| "(document)".to_string())
}

/// Parse and validate one scenario. `origin` names the file in errors; the id is its stem.
pub fn parse(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
    let mut scenario: Scenario = toml::from_str(text).map_err(|e| {
        let message = e.message().trim().to_string();
        let field = field_of(&message, text, e.span().as_ref());
        error_at(text, origin, e.span(), &field, &message, hint_for(&message))
    })?;
    scenario.file = origin.to_string();
    scenario.id = Path::new(origin)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    validate(&scenario, text, origin)?;
    Ok(scenario)
}

/// Fleet host names declared inline (`[[host]] name = …`).
pub(crate) fn inline_host_names(s: &Scenario) -> Vec<String> {
    s.host
        .iter()
        .filter_map(|h| h.get("name").and_then(|v| v.as_str()).map(String::from))
        .collect()
}

/// `{name}` placeholders in a reference.
pub fn placeholders(reference: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = reference;
    while let Some(start) = rest.find('{') {
        let Some(len) = rest[start..].find('}') else {
            break;
        };
        out.push(&rest[start + 1..start + len]);
        rest = &rest[start + len + 1..];
    }
    out
}

fn validate(s: &Scenario, text: &str, origin: &str) -> Result<(), ScenarioError> {
    let err = |span: Option<Range<usize>>, field: &str, msg: String, hint: &str| {
        error_at(text, origin, span, field, msg, hint)
    };
    if s.steps.is_empty() {
        return Err(err(
            None,
            "step",
            "a scenario needs at least one [[step]]".into(),
            "add [[step]] action = \"pull\" image = \"{registry}/repo:tag\"",
        ));
    }
    match (&s.fleet, s.host.is_empty()) {
        (Some(f), false) => {
            return Err(err(
                Some(f.span()),
                "fleet",
                "both `fleet` and inline [[host]] tables are given".into(),
                "keep one: a fleet file or inline hosts",
            ));
        }
        (None, true) => {
            return Err(err(
                None,
                "host",
                "no registry: neither `fleet` nor any [[host]]".into(),
                "add a [[host]] table (fake-registry fleet format) or fleet = \"path.toml\"",
            ));
        }
        _ => {}
    }
    // Host placeholders can only be checked for inline fleets; file fleets are checked
    // when the fleet is loaded.
    let names = inline_host_names(s);
    let known = |n: &str| names.is_empty() || names.iter().any(|k| k == n);
    for (i, step) in s.steps.iter().enumerate() {
        let action = *step.action.get_ref();
        let needs_image = true;
        let field = |k: &str| format!("step[{i}].{k}");
        let Some(image) = &step.image else {
            if needs_image {
                return Err(err(
                    Some(step.action.span()),
                    &field("image"),
                    format!("`{}` needs `image`", action.as_str()),
                    "e.g. image = \"{acr}/team/app:1.0\" (for login: image = \"{acr}\")",
                ));
            }
            continue;
        };
        match (action, &step.to) {
            (Action::Copy, None) => {
                return Err(err(
                    Some(step.action.span()),
                    &field("to"),
                    "`copy` needs `to`, the destination reference".into(),
                    "e.g. to = \"{acr}/mirror/app:1.0\"",
                ));
            }
            (a, Some(to)) if a != Action::Copy => {
                return Err(err(
                    Some(to.span()),
                    &field("to"),
                    format!("`to` only applies to `copy`, not `{}`", a.as_str()),
                    "remove `to`",
                ));
            }
            _ => {}
        }
        if action != Action::Login && (step.username.is_some() || step.password.is_some()) {
            return Err(err(
                Some(step.action.span()),
                &field("username"),
                format!(
                    "credentials only apply to `login`, not `{}`",
                    action.as_str()
                ),
                "put credentials in a login step or in [[client.auth]]",
            ));
        }
        let refs = std::iter::once(image).chain(step.to.as_ref());
        for r in refs {
            let ph = placeholders(r.get_ref());
            if ph.is_empty() {
                return Err(err(
                    Some(r.span()),
                    &field("image"),
                    format!("`{}` names no fleet host", r.get_ref()),
                    "start references with a host placeholder, e.g. {acr}/repo:tag",
                ));
            }
            for p in ph {
                if !known(p) {
                    return Err(err(
                        Some(r.span()),
                        &field("image"),
                        format!("unknown host `{{{p}}}`"),
                        &format!("declared hosts: {}", names.join(", ")),
                    ));
                }
            }
        }
    }
    for (i, j) in s.expect.journal.iter().enumerate() {
        if let Some(r) = &j.request.registry
            && !known(r)
        {
            return Err(err(
                None,
                &format!("expect.journal[{i}].request.registry"),
                format!("unknown host `{r}`"),
                &format!("declared hosts: {}", names.join(", ")),
            ));
        }
    }
    if s.timeout_secs == 0 || s.timeout_secs > 3600 {
        return Err(err(
            None,
            "timeout_secs",
            format!("{} is out of range", s.timeout_secs),
            "use 1..=3600 seconds",
        ));
    }
    Ok(())
}

/// Load one scenario file; errors name it as given.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
        origin: origin.clone(),
        line: 0,
        col: 0,
        field: "(file)".into(),
        message: e.to_string(),
        hint: "check the path".into(),
    })?;
    parse(&text, &origin)
}

/// Every `*.toml` directly in `dir`, sorted by name; all errors, not just the first.
pub fn load_dir(dir: &Path) -> Result<Vec<Scenario>, Vec<ScenarioError>> {
    let mut paths: Vec<_> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect(),
        Err(e) => {
            return Err(vec![ScenarioError {
                origin: dir.display().to_string(),
                line: 0,
                col: 0,
                field: "(directory)".into(),
                message: e.to_string(),
                hint: "run from the repository root or pass --scenarios DIR".into(),
            }]);
        }
    };
    paths.sort();
    let (ok, errs): (Vec<_>, Vec<_>) = paths.iter().map(|p| load(p)).partition(Result::is_ok);
    if errs.is_empty() {
        Ok(ok.into_iter().filter_map(Result::ok).collect())
    } else {
        Err(errs.into_iter().filter_map(Result::err).collect())
    }
}
