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

/// Shown in a grid where a cell needs no attention and says little: not-applicable.
pub const NOT_APPLICABLE_MARK: &str = "·";

/// The one-symbol mark of a verdict in a compact grid: the verdict's [`symbol`], except
/// not-applicable (most of a full matrix), which is a short quiet mark.
pub fn grid_mark(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::NotApplicable => NOT_APPLICABLE_MARK,
        v => symbol(v),
    }
}

/// Whether a cell with this verdict needs someone's attention: an unrecorded failure, a
/// harness error, a stale known-failure record, a client that could not run.
pub fn needs_attention(verdict: Verdict) -> bool {
    attention_rank(verdict).is_some()
}

/// The order cells needing attention are listed in: fail, error, fixed, not-run.
pub fn attention_rank(verdict: Verdict) -> Option<u8> {
    match verdict {
        Verdict::Fail => Some(0),
        Verdict::Error => Some(1),
        Verdict::Fixed => Some(2),
        Verdict::NotRun => Some(3),
        Verdict::Pass | Verdict::KnownFailure | Verdict::NotApplicable => None,
    }
}

/// Text without terminal escape sequences or control characters: CSI (`ESC [ … final`),
/// OSC/DCS/APC/PM/SOS strings (ended by BEL or `ESC \`), two-character escapes, 8-bit CSI,
/// and every other control character except newline and tab are removed; a carriage return
/// that redraws a line (progress bars) becomes a newline. Client output is shown this way in
/// every file a person reads, so no raw `ESC` ever reaches a page or a log.
///
/// (Not `strip-ansi-escapes`: it drops tabs and carriage returns too, and with them the
/// layout of client output.)
pub fn plain_text(text: &str) -> String {
    if !text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                // CSI: parameters and intermediates, then one final byte in @..~.
                Some('[') => skip_csi(&mut chars),
                // String commands: up to BEL or ST (`ESC \\`).
                Some(']' | 'P' | 'X' | '^' | '_') => skip_string(&mut chars),
                // `ESC ( B` and the like: intermediates, then a final character.
                Some(' '..='/') => {
                    while chars.next_if(|n| (' '..='/').contains(n)).is_some() {}
                    chars.next();
                }
                // Any other two-character escape (`ESC 7`, `ESC M`…), or a lone ESC.
                Some(_) | None => {}
            },
            '\u{9b}' => skip_csi(&mut chars),
            '\u{9d}' | '\u{90}' | '\u{98}' | '\u{9e}' | '\u{9f}' => skip_string(&mut chars),
            '\n' | '\t' => out.push(c),
            // A carriage return that only ends a line is dropped; one that redraws a line
            // (progress bars) starts a new line, so no text is lost.
            '\r' => {
                if chars.peek() != Some(&'\n') {
                    out.push('\n');
                }
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn skip_csi(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    for n in chars.by_ref() {
        if ('@'..='~').contains(&n) {
            break;
        }
    }
}

fn skip_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while let Some(n) = chars.next() {
        match n {
            '\u{7}' | '\u{9c}' => break,
            '\u{1b}' => {
                chars.next_if_eq(&'\\');
                break;
            }
            _ => {}
        }
    }
}

/// One line of at most `max` characters: [`plain_text`], whitespace runs (newlines
/// included) folded to one space, and a longer text cut with `…`.
pub fn one_line(text: &str, max: usize) -> String {
    let folded = plain_text(text)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if folded.chars().count() <= max {
        return folded;
    }
    let mut cut: String = folded.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_removes_every_escape_sequence_and_control_character() {
        for (input, expected) in [
            ("\u{1b}[31mred\u{1b}[0m", "red"),
            ("\u{1b}[1;38;5;196mbold\u{1b}[m plain", "bold plain"),
            (
                "\u{1b}]8;;https://x\u{7}link\u{1b}]8;;\u{1b}\\ done",
                "link done",
            ),
            ("\u{1b}(Bcharset", "charset"),
            ("\u{1b}7saved\u{1b}8", "saved"),
            ("lone\u{1b}", "lone"),
            ("\u{9b}2Keight-bit", "eight-bit"),
            ("bell\u{7} nul\u{0} del\u{7f}", "bell nul del"),
            ("a\tb\nc", "a\tb\nc"),
            ("line\r\n", "line\n"),
            ("10%\r50%\r100%", "10%\n50%\n100%"),
            ("× — →", "× — →"),
        ] {
            let plain = plain_text(input);
            assert_eq!(plain, expected, "{input:?}");
            assert!(!plain.contains('\u{1b}'), "{input:?}");
        }
    }

    #[test]
    fn one_line_folds_and_bounds() {
        assert_eq!(one_line("a\n  b\u{1b}[0m\tc", 10), "a b c");
        let long = one_line(&"x".repeat(500), 100);
        assert_eq!(long.chars().count(), 100);
        assert!(long.ends_with('…'));
    }

    #[test]
    fn attention_order_is_fail_error_fixed_not_run() {
        let mut verdicts: Vec<Verdict> = ALL_VERDICTS
            .iter()
            .copied()
            .filter(|v| needs_attention(*v))
            .collect();
        verdicts.sort_by_key(|v| attention_rank(*v));
        assert_eq!(
            verdicts,
            [
                Verdict::Fail,
                Verdict::Error,
                Verdict::Fixed,
                Verdict::NotRun
            ]
        );
    }
}
