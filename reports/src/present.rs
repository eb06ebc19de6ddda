//! How verdicts and journal entries read to a human: one symbol per verdict, always followed
//! by the verdict's word so the output still greps (`grep -c fail matrix.md`).

use serde_json::Value;

use crate::Verdict;

/// The symbol of a verdict.
pub fn symbol(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Pass => "✅",
        Verdict::Fail => "❌",
        Verdict::NotApplicable => "⏭",
        Verdict::NotRun => "⚠",
        Verdict::Error => "💥",
        Verdict::KnownFailure => "🔶",
        Verdict::Fixed => "🔧",
    }
}

/// `✅ pass`, `⚠ not-run`…
pub fn label(verdict: Verdict) -> String {
    format!("{} {}", symbol(verdict), verdict.as_str())
}

/// Shown where the grid has no cell for a scenario × client.
pub const MISSING_LABEL: &str = "❔ missing";

/// Every verdict, in the order totals list them.
pub const ALL_VERDICTS: [Verdict; 7] = [
    Verdict::Pass,
    Verdict::Fail,
    Verdict::KnownFailure,
    Verdict::Fixed,
    Verdict::NotApplicable,
    Verdict::NotRun,
    Verdict::Error,
];

/// The fields of one journal entry a report shows. The journal is kept as JSON in the
/// model (this crate does not depend on the registry), so every field is optional here and
/// a missing one shows as `-` instead of failing the whole report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalLine {
    pub seq: String,
    pub host: String,
    pub method: String,
    /// Path plus `?query` when there was one.
    pub target: String,
    pub status: String,
    /// `scheme/principal`: the principal, else the Basic username, else `-`.
    pub auth: String,
    pub notes: Vec<String>,
    /// Set when the request carried another registry's credential.
    pub leak: Option<String>,
}

impl JournalLine {
    pub fn from_entry(entry: &Value) -> Self {
        let text = |field: &str| match entry.get(field) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => "-".to_owned(),
        };
        let mut target = text("path");
        if let Some(Value::String(query)) = entry.get("query") {
            target.push('?');
            target.push_str(query);
        }
        let auth = entry.get("auth");
        let auth_field = |field: &str| auth.and_then(|a| a.get(field)).and_then(Value::as_str);
        let scheme = auth_field("scheme").unwrap_or("-");
        let who = auth_field("principal")
            .or_else(|| auth_field("username"))
            .unwrap_or("-");
        let notes = entry
            .get("notes")
            .and_then(Value::as_array)
            .map(|notes| {
                notes
                    .iter()
                    .map(|n| n.as_str().map_or_else(|| n.to_string(), str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            seq: text("seq"),
            host: text("host"),
            method: text("method"),
            target,
            status: text("status"),
            auth: format!("{scheme}/{who}"),
            notes,
            leak: entry.get("leak").and_then(Value::as_str).map(str::to_owned),
        }
    }

    /// `#12 myregistry.azurecr.io GET /v2/ → 401 auth=none/-`, plus `leak=…` when there was one.
    pub fn summary(&self) -> String {
        let mut line = format!(
            "#{} {} {} {} → {} auth={}",
            self.seq, self.host, self.method, self.target, self.status, self.auth
        );
        if let Some(leak) = &self.leak {
            line.push_str(" leak=");
            line.push_str(leak);
        }
        line
    }
}

/// One summary line per journal entry.
pub fn journal_summary(journal: &[Value]) -> String {
    journal
        .iter()
        .map(|e| JournalLine::from_entry(e).summary())
        .collect::<Vec<_>>()
        .join("\n")
}
