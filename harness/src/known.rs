//! Recorded known failures (`known-failures.toml` at the workspace root, beside
//! `clients.toml`): real client versions that
//! deviate from a scenario's rule, each with the reason and an upstream link. A record turns
//! a matching `fail` into `known-failure` and a matching `pass` into `fixed` (the record is
//! stale: the bug was fixed upstream, or the scenario stopped reproducing it). The
//! expectation is never bent: a known failure is still reported, with its link.
//!
//! ```toml
//! [[known]]
//! client = "nerdctl"                   # the client's name in clients.toml
//! versions = ">=2.0.0, <2.0.3"         # a semver requirement; "*" = every version, dev too
//! scenario = "gitlab-subpath-login-build"   # a scenario id, or a glob (`gitlab-port-443-*`)
//!                                      # a family's base: every member's cells; a variant:
//!                                      # only the cells that ran it
//! reason = "login stores the credential only under host:443; buildctl looks up host"
//! link = "https://github.com/containerd/nerdctl/issues/3748"
//! ```

use fake_registry::config::{ConfigError, toml_error};
use reports::{Cell, KnownIssue, RunReport, Verdict};
use serde::Deserialize;
use std::path::Path;
use toml::Spanned;

/// The file's name, at the workspace root.
pub const FILE_NAME: &str = "known-failures.toml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default, rename = "known")]
    records: Vec<Record>,
}

/// One recorded deviation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    pub client: Spanned<String>,
    pub versions: Spanned<String>,
    pub scenario: Spanned<String>,
    pub reason: String,
    pub link: Spanned<String>,
}

impl Record {
    /// Whether this record covers `client` (its name in clients.toml) at `version`. A
    /// maintainer's own build (`dev`) is covered only by `*`.
    pub fn covers(&self, client: &str, version: &str, scenario: &str) -> bool {
        self.client.get_ref() == client
            && crate::scenario::glob(self.scenario.get_ref(), scenario)
            && self.covers_version(version)
    }

    /// Whether this record covers `cell` of `client` at `version`. A record naming the
    /// cell's row — the base of a scenario family — covers it whichever member ran; one
    /// naming a variant covers only the cells that ran that variant ([`Cell::variant`]).
    pub fn covers_cell(&self, client: &str, version: &str, cell: &Cell) -> bool {
        self.covers(client, version, &cell.scenario)
            || cell
                .variant
                .as_deref()
                .is_some_and(|variant| self.covers(client, version, variant))
    }

    /// Whether the record's `versions` covers `version` (`dev` only by `*`).
    pub fn covers_version(&self, version: &str) -> bool {
        let wanted = self.versions.get_ref().trim();
        if wanted == "*" {
            return true;
        }
        match (
            semver::VersionReq::parse(wanted),
            semver::Version::parse(version),
        ) {
            (Ok(req), Ok(v)) => req.matches(&v),
            _ => false,
        }
    }

    fn issue(&self) -> KnownIssue {
        KnownIssue {
            reason: self.reason.clone(),
            link: self.link.get_ref().clone(),
            versions: self.versions.get_ref().clone(),
        }
    }
}

/// Every record of the file.
#[derive(Debug, Default)]
pub struct KnownFailures {
    pub records: Vec<Record>,
    /// Where they came from (for messages).
    pub file: String,
}

impl KnownFailures {
    /// Reads the file; a missing file is an empty list.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let origin = path.display().to_string();
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Self {
                    records: vec![],
                    file: origin,
                });
            }
            Err(e) => {
                return Err(ConfigError::at(
                    "",
                    &origin,
                    0,
                    "",
                    format!("cannot read the file: {e}"),
                    "",
                ));
            }
        };
        Self::parse(&text, &origin)
    }

    /// Parses and checks the records: versions are `*` or a semver requirement, links are
    /// https URLs, reasons are not empty.
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let file: File = toml::from_str(text).map_err(|e| toml_error(text, origin, &e))?;
        for (i, r) in file.records.iter().enumerate() {
            let err = |span: std::ops::Range<usize>, field: &str, message: String, hint: &str| {
                ConfigError::at(
                    text,
                    origin,
                    span.start,
                    format!("known[{i}].{field}"),
                    message,
                    hint,
                )
            };
            let versions = r.versions.get_ref().trim();
            if versions != "*"
                && let Err(e) = semver::VersionReq::parse(versions)
            {
                return Err(err(
                    r.versions.span(),
                    "versions",
                    format!("{versions:?} is not a version requirement: {e}"),
                    "write \"*\", \"=2.0.0\", \">=2.0.0, <2.0.3\" or \"<=3.3.0\"",
                ));
            }
            if !r.link.get_ref().starts_with("https://") {
                return Err(err(
                    r.link.span(),
                    "link",
                    format!("{:?} is not an https URL", r.link.get_ref()),
                    "link the upstream issue, pull request or documentation that records it",
                ));
            }
            if r.reason.trim().is_empty() {
                return Err(err(
                    r.client.span(),
                    "reason",
                    "the reason is empty".into(),
                    "say in one sentence what the client does wrong",
                ));
            }
        }
        Ok(Self {
            records: file.records,
            file: origin.to_owned(),
        })
    }

    /// The record covering a cell, if any ([`Record::covers_cell`]).
    pub fn find(&self, client: &str, version: &str, cell: &Cell) -> Option<&Record> {
        self.records
            .iter()
            .find(|r| r.covers_cell(client, version, cell))
    }

    /// Applies the records to a run's cells: `fail` → `known-failure`, `pass` → `fixed`,
    /// each with the record. Other verdicts are left alone (a client that did not run proves
    /// nothing either way). Returns the records that covered no cell that ran, so a caller
    /// can warn of stale entries.
    pub fn apply(&self, report: &mut RunReport) -> Vec<&Record> {
        let mut used = vec![false; self.records.len()];
        for cell in &mut report.cells {
            let Some(info) = report.clients.iter().find(|c| c.id == cell.client) else {
                continue;
            };
            let Some(i) = self
                .records
                .iter()
                .position(|r| r.covers_cell(&info.name, &info.version, cell))
            else {
                continue;
            };
            let record = &self.records[i];
            match cell.verdict {
                Verdict::Fail => {
                    used[i] = true;
                    cell.verdict = Verdict::KnownFailure;
                    cell.known = Some(record.issue());
                }
                Verdict::Pass => {
                    used[i] = true;
                    cell.verdict = Verdict::Fixed;
                    cell.reason = format!(
                        "recorded as a known failure ({}), but the client now passes: update \
                         {} ({})",
                        record.link.get_ref(),
                        FILE_NAME,
                        cell.reason
                    );
                    cell.known = Some(record.issue());
                }
                _ => {}
            }
        }
        self.records
            .iter()
            .zip(used)
            .filter(|(_, used)| !used)
            .map(|(r, _)| r)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reports::{ClientInfo, SCHEMA_VERSION};

    const FILE: &str = r#"
[[known]]
client = "nerdctl"
versions = ">=2.0.0, <2.0.3"
scenario = "gitlab-subpath-login-build"
reason = "login stores only host:443"
link = "https://github.com/containerd/nerdctl/issues/3748"

[[known]]
client = "skopeo"
versions = "*"
scenario = "creds-store-*"
reason = "credsStore is ignored"
link = "https://github.com/containers/image/issues/111"
"#;

    fn report(cells: &[(&str, &str, Verdict)]) -> RunReport {
        let client = |id: &str| {
            let (name, version) = id.split_once('@').unwrap_or((id, ""));
            ClientInfo {
                id: id.into(),
                name: name.into(),
                version: version.into(),
                source: "cache".into(),
                path: None,
                unavailable: None,
            }
        };
        RunReport {
            schema: SCHEMA_VERSION.into(),
            run_id: "r".into(),
            started: String::new(),
            finished: String::new(),
            regcompat_version: String::new(),
            clients: ["nerdctl@2.0.0", "nerdctl@2.0.3", "skopeo@dev"]
                .into_iter()
                .map(client)
                .collect(),
            scenarios: vec![],
            cells: cells
                .iter()
                .map(|(s, c, v)| Cell::without_evidence(*s, *c, *v, "r"))
                .collect(),
            shard: None,
        }
    }

    #[test]
    fn a_recorded_failure_is_known_a_recorded_pass_is_fixed_others_untouched() {
        let known = KnownFailures::parse(FILE, "k.toml").unwrap();
        let mut r = report(&[
            ("gitlab-subpath-login-build", "nerdctl@2.0.0", Verdict::Fail),
            ("gitlab-subpath-login-build", "nerdctl@2.0.3", Verdict::Fail),
            ("creds-store-helper", "skopeo@dev", Verdict::Pass),
            ("open-pull", "skopeo@dev", Verdict::Fail),
        ]);
        let unused = known.apply(&mut r);
        let verdicts: Vec<Verdict> = r.cells.iter().map(|c| c.verdict).collect();
        assert_eq!(
            verdicts,
            [
                Verdict::KnownFailure,
                Verdict::Fail, // 2.0.3 is outside the range: an unrecorded failure
                Verdict::Fixed,
                Verdict::Fail, // no record for this scenario
            ]
        );
        assert_eq!(
            r.cells[0].known.as_ref().map(|k| k.link.as_str()),
            Some("https://github.com/containerd/nerdctl/issues/3748")
        );
        assert!(r.cells[2].reason.contains("update known-failures.toml"));
        assert!(unused.is_empty());
        assert!(r.has_failures(), "fail and fixed cells fail the job");
    }

    /// A record naming a family's variant covers the cells that ran it (on the base's row);
    /// one naming the base covers the cells of every member.
    #[test]
    fn records_of_a_variant_cover_its_cells_records_of_the_base_every_members() {
        let known = KnownFailures::parse(
            r#"
[[known]]
client = "nerdctl"
versions = "*"
scenario = "fault-x-builder-create"
reason = "fails the variant"
link = "https://example.com/variant"

[[known]]
client = "skopeo"
versions = "*"
scenario = "fault-x"
reason = "fails the family"
link = "https://example.com/base"
"#,
            "k.toml",
        )
        .unwrap();
        let mut r = report(&[
            ("fault-x", "nerdctl@2.0.0", Verdict::Fail),
            ("fault-x", "nerdctl@2.0.3", Verdict::Fail),
            ("fault-x", "skopeo@dev", Verdict::Fail),
        ]);
        let variant = Some("fault-x-builder-create".to_owned());
        r.cells[0].variant = variant.clone(); // ran the variant: its record applies
        r.cells[2].variant = variant; // ran the variant: the base's record applies too
        let cell_of_base = Cell::without_evidence("fault-x", "nerdctl@2.0.0", Verdict::Fail, "");
        assert!(
            known.find("nerdctl", "2.0.0", &cell_of_base).is_none(),
            "a variant's record does not cover a cell that ran the base"
        );
        assert!(known.apply(&mut r).is_empty());
        let verdicts: Vec<Verdict> = r.cells.iter().map(|c| c.verdict).collect();
        assert_eq!(
            verdicts,
            [Verdict::KnownFailure, Verdict::Fail, Verdict::KnownFailure]
        );
        let links: Vec<Option<&str>> = r
            .cells
            .iter()
            .map(|c| c.known.as_ref().map(|k| k.link.as_str()))
            .collect();
        assert_eq!(
            links,
            [
                Some("https://example.com/variant"),
                None,
                Some("https://example.com/base")
            ]
        );
        // A cell that ran the base is covered by the base's record.
        let mut base = report(&[("fault-x", "skopeo@dev", Verdict::Pass)]);
        known.apply(&mut base);
        assert_eq!(base.cells[0].verdict, Verdict::Fixed);
    }

    #[test]
    fn a_record_that_covers_nothing_is_reported_unused() {
        let known = KnownFailures::parse(FILE, "k.toml").unwrap();
        let mut r = report(&[("open-pull", "nerdctl@2.0.0", Verdict::Pass)]);
        assert_eq!(known.apply(&mut r).len(), 2);
    }

    #[test]
    fn bad_records_name_line_and_field() {
        for (text, field, needle) in [
            (
                "[[known]]\nclient = \"x\"\nversions = \"two\"\nscenario = \"s\"\nreason = \"r\"\nlink = \"https://x\"\n",
                "known[0].versions",
                "not a version requirement",
            ),
            (
                "[[known]]\nclient = \"x\"\nversions = \"*\"\nscenario = \"s\"\nreason = \"r\"\nlink = \"javascript:alert(1)\"\n",
                "known[0].link",
                "not an https URL",
            ),
            (
                "[[known]]\nclient = \"x\"\nversions = \"*\"\nscenario = \"s\"\nreason = \" \"\nlink = \"https://x\"\n",
                "known[0].reason",
                "empty",
            ),
        ] {
            let e = KnownFailures::parse(text, "k.toml").unwrap_err();
            assert_eq!(e.field, field, "{e}");
            assert!(e.to_string().contains(needle), "{e}");
            assert!(e.to_string().starts_with("k.toml:"), "{e}");
        }
    }
}
