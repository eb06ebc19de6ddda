//! Scenario files (`scenarios/*.toml`): which registries to start, the client-side
//! configuration to write, the steps as abstract actions, and the expectations.
//!
//! Parsing is strict: unknown keys are rejected with the list of valid ones, and every
//! error names the file, line, column and dotted field with a hint. The `[[host]]` tables
//! are the fleet's own format (`fake_registry::config`) and are checked by its parser.

mod locate;
mod model;

pub use locate::ScenarioError;
pub use model::*;

use fake_registry::config::FleetConfig;
use locate::{Locator, PathIndex};
use serde::Deserialize;
use serde::de::IntoDeserializer;
use std::path::{Path, PathBuf};

/// The only credential helper a sandbox has (`docker-credential-regcompat`).
pub const HELPER_NAME: &str = "regcompat";

impl Scenario {
    /// Reads, parses and validates a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            file: file.clone(),
            line: 0,
            col: 0,
            field: String::new(),
            message: format!("cannot read the file: {e}"),
            hint: "check the path (scenarios live in scenarios/*.toml)".into(),
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates scenario text; `path` names it in errors and resolves `fleet`.
    pub fn parse(text: &str, path: &Path) -> Result<Scenario, ScenarioError> {
        let file = path.display().to_string();
        let at = Locator { text, file: &file };
        let doc = toml::de::DeTable::parse(text).map_err(|e| at.toml_error(&e, None))?;
        let index = PathIndex::build(doc.get_ref());
        let document = Document::deserialize(doc.into_deserializer())
            .map_err(|e| at.toml_error(&e, Some(&index)))?;
        let fleet = match (&document.fleet, document.host.is_empty()) {
            (Some(_), false) => {
                return Err(at.at_field(
                    &index,
                    "fleet",
                    "both `fleet` and inline [[host]] tables are given".into(),
                    "keep one: a fleet file, or the [[host]] tables in the scenario",
                ));
            }
            (Some(rel), true) => {
                let base = path.parent().unwrap_or(Path::new("."));
                FleetConfig::load(&base.join(rel))?
            }
            (None, _) => FleetConfig::parse(&only_host_tables(text), &file)?,
        };
        let id = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let scenario = Scenario {
            id,
            file: path.to_path_buf(),
            meta: document.scenario,
            fleet,
            docker_config: document.docker_config,
            helper: document.helper,
            steps: document.steps,
            expect: document.expect,
        };
        scenario
            .validate()
            .map_err(|(field, message, hint)| at.at_field(&index, &field, message, &hint))?;
        Ok(scenario)
    }

    /// The names of the fleet's hosts.
    pub fn host_names(&self) -> Vec<&str> {
        self.fleet.hosts.iter().map(|h| h.name.as_str()).collect()
    }

    /// The actions the steps need.
    pub fn actions(&self) -> Vec<Action> {
        let mut a: Vec<Action> = self.steps.iter().map(|s| s.action).collect();
        a.dedup();
        a
    }

    fn validate(&self) -> Result<(), (String, String, String)> {
        let fail =
            |field: String, message: String, hint: &str| Err((field, message, hint.to_owned()));
        let hosts = self.host_names();
        let host_list = hosts.join(", ");
        if hosts.is_empty() {
            return fail(
                "host".into(),
                "the scenario starts no registry".into(),
                "add a [[host]] table (see scenarios/README.md) or `fleet = \"fleets/x.toml\"`",
            );
        }
        if self.meta.timeout == 0 || self.meta.timeout > 1800 {
            return fail(
                "scenario.timeout".into(),
                format!("{} seconds is out of range", self.meta.timeout),
                "use 1..=1800 seconds per step",
            );
        }
        if self.steps.is_empty() {
            return fail(
                "step".into(),
                "the scenario has no steps".into(),
                "add [[step]] tables with action = login | pull | push | build-from | copy",
            );
        }
        let check_template = |field: String, text: &str, must_be_reference: bool| {
            check_templates(text, &hosts).map_err(|m| {
                (
                    field.clone(),
                    m,
                    format!("use one of the scenario's hosts: {host_list}"),
                )
            })?;
            if must_be_reference && !(text.starts_with('{') && text.contains("}/")) {
                return Err((
                    field,
                    format!("{text:?} does not start with a `{{host}}/` template"),
                    format!(
                        "write references as `{{host}}/repository:tag` so they reach the fake registry (hosts: {host_list})"
                    ),
                ));
            }
            Ok(())
        };
        let check_principal =
            |field: String, reference: &str| -> Result<(), (String, String, String)> {
                let Some((host, name)) = reference.split_once('/') else {
                    return Err((
                        field,
                        format!("{reference:?} is not `host/principal`"),
                        "name a principal as `<host name>/<principal name>`, e.g. \"acr/sp-pull\""
                            .into(),
                    ));
                };
                let Some(h) = self.fleet.hosts.iter().find(|h| h.name == host) else {
                    return Err((
                        field,
                        format!("no host named {host:?}"),
                        format!("use one of the scenario's hosts: {host_list}"),
                    ));
                };
                if !h.principals.iter().any(|p| p.name == name) {
                    let names: Vec<&str> = h.principals.iter().map(|p| p.name.as_str()).collect();
                    return Err((
                        field,
                        format!("host {host:?} has no principal {name:?}"),
                        format!("use one of: {}", names.join(", ")),
                    ));
                }
                Ok(())
            };

        for (i, s) in self.steps.iter().enumerate() {
            let at = |f: &str| format!("step[{i}].{f}");
            let allowed: &[&str] = match s.action {
                Action::Login => &["registry", "principal", "username", "password"],
                Action::Pull => &["image", "platform"],
                Action::Push => &["image", "source"],
                Action::BuildFrom => &["image", "platform"],
                Action::Copy => &["from", "to"],
            };
            let present = [
                ("image", s.image.is_some()),
                ("from", s.from.is_some()),
                ("to", s.to.is_some()),
                ("registry", s.registry.is_some()),
                ("principal", s.principal.is_some()),
                ("username", s.username.is_some()),
                ("password", s.password.is_some()),
                ("platform", s.platform.is_some()),
                ("source", s.source.is_some()),
            ];
            for (name, here) in present {
                if here && !allowed.contains(&name) {
                    return fail(
                        at(name),
                        format!("`{name}` does not apply to a {} step", s.action.as_str()),
                        &format!("a {} step takes: {}", s.action.as_str(), allowed.join(", ")),
                    );
                }
            }
            match s.action {
                Action::Login => {
                    let Some(reg) = &s.registry else {
                        return fail(
                            at("registry"),
                            "a login step needs `registry`".into(),
                            &format!("name one of the scenario's hosts: {host_list}"),
                        );
                    };
                    if !hosts.contains(&reg.as_str()) {
                        return fail(
                            at("registry"),
                            format!("no host named {reg:?}"),
                            &format!("use one of: {host_list}"),
                        );
                    }
                    match (&s.principal, &s.username, &s.password) {
                        (Some(p), None, _) => check_principal(at("principal"), p)?,
                        (None, Some(_), Some(_)) => {}
                        _ => {
                            return fail(
                                at("principal"),
                                "a login step needs `principal`, or `username` and `password`"
                                    .into(),
                                "e.g. principal = \"acr/sp-push\", or principal plus password = \"wrong\" to log in with a wrong password",
                            );
                        }
                    }
                }
                Action::Pull | Action::Push | Action::BuildFrom => {
                    let Some(image) = &s.image else {
                        return fail(
                            at("image"),
                            format!("a {} step needs `image`", s.action.as_str()),
                            "e.g. image = \"{acr}/team/app:1\"",
                        );
                    };
                    check_template(at("image"), image, true)?;
                }
                Action::Copy => {
                    for (name, v) in [("from", &s.from), ("to", &s.to)] {
                        let Some(r) = v else {
                            return fail(
                                at(name),
                                format!("a copy step needs `{name}`"),
                                "e.g. from = \"{src}/base:1\", to = \"{dst}/base:1\"",
                            );
                        };
                        check_template(at(name), r, true)?;
                    }
                }
            }
            if let Some(p) = &s.platform
                && fake_registry::fixtures::Platform::parse(p).is_err()
            {
                return fail(
                    at("platform"),
                    format!("{p:?} is not a platform"),
                    "write os/arch[/variant], e.g. \"linux/arm64\"",
                );
            }
            if let Some(secs) = s.advance_clock
                && !(0..=400 * 24 * 3600).contains(&secs)
            {
                return fail(
                    at("advance_clock"),
                    format!("{secs} seconds is out of range"),
                    "move the fleet's clock forward by 0..=400 days, in seconds (ECR tokens expire after 43200)",
                );
            }
            if let Some(src) = &s.source
                && let Err(m) = src.spec()
            {
                return fail(
                    at("source"),
                    m,
                    "see the fleet's `image` format: format, platforms, layers",
                );
            }
        }

        if let Some(dc) = &self.docker_config {
            for (key, auth) in &dc.auths {
                let f = format!("docker_config.auths.{key}");
                check_template(f.clone(), key, false)?;
                match (
                    &auth.principal,
                    &auth.username,
                    &auth.password,
                    &auth.identity_token,
                ) {
                    (Some(p), None, None, None) => check_principal(format!("{f}.principal"), p)?,
                    (None, Some(_), Some(_), None) => {}
                    (None, None, None, Some(t)) => {
                        check_principal(format!("{f}.identity_token"), t)?
                    }
                    _ => {
                        return fail(
                            f,
                            "an auths entry needs exactly one of: `principal`, `username`+`password`, `identity_token`".into(),
                            "e.g. { principal = \"acr/sp-pull\" } or { identity_token = \"acr/refresh\" }",
                        );
                    }
                }
            }
            if let Some(store) = &dc.creds_store
                && store != HELPER_NAME
            {
                return fail(
                    "docker_config.credsStore".into(),
                    format!("no credential helper {store:?} in the sandbox"),
                    "use \"regcompat\": the harness's helper answers from the scenario's [[helper]] entries",
                );
            }
            for (key, helper) in &dc.cred_helpers {
                let f = format!("docker_config.credHelpers.{key}");
                check_template(f.clone(), key, false)?;
                if helper != HELPER_NAME {
                    return fail(
                        f,
                        format!("no credential helper {helper:?} in the sandbox"),
                        "use \"regcompat\"",
                    );
                }
            }
        }
        for (i, h) in self.helper.iter().enumerate() {
            let f = |x: &str| format!("helper[{i}].{x}");
            check_template(f("server"), &h.server, false)?;
            match (&h.principal, &h.username, &h.secret, &h.identity_token) {
                (Some(p), None, None, None) => check_principal(f("principal"), p)?,
                (None, Some(_), Some(_), None) => {}
                (None, None, None, Some(t)) => check_principal(f("identity_token"), t)?,
                _ => {
                    return fail(
                        format!("helper[{i}]"),
                        "a helper entry needs exactly one of: `principal`, `username`+`secret`, `identity_token`".into(),
                        "e.g. { server = \"{acr}\", principal = \"acr/sp-pull\" }",
                    );
                }
            }
        }
        for (i, name) in self.expect.no_authorization_to.iter().enumerate() {
            if name.is_empty() {
                return fail(
                    format!("expect.no_authorization_to[{i}]"),
                    "empty host name".into(),
                    "name a fleet host (or its auxiliary storage host)",
                );
            }
        }
        for (i, j) in self.expect.journal.iter().enumerate() {
            let f = |x: &str| format!("expect.journal[{i}].{x}");
            if let Some(c) = &j.count
                && let Err(m) = Count::parse(c)
            {
                return fail(
                    f("count"),
                    m,
                    "write \">=1\", \"0\", \"==2\", \"<=3\" or \">0\"",
                );
            }
            if let Some(a) = &j.auth
                && let Some(s) = &a.scheme
                && !["none", "basic", "bearer"].contains(&s.as_str())
            {
                return fail(
                    f("auth.scheme"),
                    format!("unknown scheme {s:?}"),
                    "use none, basic or bearer",
                );
            }
            if let Some(m) = &j.request.method
                && !m
                    .split('|')
                    .all(|m| ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"].contains(&m.trim()))
            {
                return fail(
                    f("request.method"),
                    format!("{m:?} is not an HTTP method the registry serves"),
                    "use GET, HEAD, POST, PUT, PATCH or DELETE (uppercase), or alternatives like \"GET|HEAD\"",
                );
            }
        }
        Ok(())
    }
}

impl JournalExpect {
    pub fn count(&self) -> Count {
        self.count
            .as_deref()
            .and_then(|c| Count::parse(c).ok())
            .unwrap_or(Count::AtLeast(1))
    }
}

/// Checks every `{name}` in `text` names a host.
fn check_templates(text: &str, hosts: &[&str]) -> Result<(), String> {
    let mut rest = text;
    // bounded by the text length: each turn consumes at least one `{`
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err(format!("unclosed `{{` in {text:?}"));
        };
        let name = &after[..close];
        if !hosts.contains(&name) {
            return Err(format!("`{{{name}}}` names no host of this scenario"));
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

/// Replaces `{name}` templates with the fleet's authorities (`name` → `host[:port]`).
pub fn expand(text: &str, authority: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let name = &after[..close];
                match authority(name) {
                    Some(a) => out.push_str(&a),
                    None => out.push_str(&rest[open..open + close + 2]),
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The scenario text with everything outside `[[host]]`/`[host.…]` sections blanked
/// (newlines kept), so the fleet's parser sees only its tables at their real lines and
/// columns.
fn only_host_tables(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_host = false;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        if t.starts_with('[') {
            let name = t.trim_start_matches('[').trim_start();
            let root: String = name
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
                .collect();
            in_host = root == "host";
        }
        if in_host {
            out.push_str(line);
        } else if line.ends_with('\n') {
            out.push('\n');
        }
    }
    out
}

/// Scenario files under `dir` whose stem matches `glob` (all when `None`), sorted.
pub fn discover(dir: &Path, glob: Option<&str>) -> std::io::Result<Vec<PathBuf>> {
    let pattern = glob.and_then(|g| glob::Pattern::new(g).ok());
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let stem = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let keep = match (&pattern, glob) {
            (Some(p), _) => p.matches(&stem) || p.matches_path(&path),
            (None, Some(g)) => stem == g,
            (None, None) => true,
        };
        if keep {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expand_replaces_known_hosts_and_keeps_unknown() {
        let f = |n: &str| (n == "acr").then(|| "myregistry.azurecr.io".to_string());
        assert_eq!(expand("{acr}/a/b:1", &f), "myregistry.azurecr.io/a/b:1");
        assert_eq!(expand("{x}/a", &f), "{x}/a");
    }

    #[test]
    fn counts_parse_and_hold() {
        assert_eq!(Count::parse(">=1"), Ok(Count::AtLeast(1)));
        assert_eq!(Count::parse(">0"), Ok(Count::AtLeast(1)));
        assert_eq!(Count::parse("0"), Ok(Count::Exactly(0)));
        assert!(Count::parse("some").is_err());
        assert!(Count::AtMost(2).holds(2));
        assert!(!Count::Exactly(0).holds(1));
    }

    #[test]
    fn only_host_tables_keeps_lines_in_place() {
        let text = "[scenario]\ntitle = \"x\"\n[[host]]\nname = \"a\"\n[host.profile]\nkind = \"open\"\n[[step]]\naction = \"pull\"\n";
        let blanked = only_host_tables(text);
        assert_eq!(blanked.lines().count(), text.lines().count());
        assert_eq!(
            blanked,
            "\n\n[[host]]\nname = \"a\"\n[host.profile]\nkind = \"open\"\n\n\n"
        );
    }
}
