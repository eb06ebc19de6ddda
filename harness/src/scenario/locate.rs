//! Where things are in a scenario file: an index from dotted field paths (`step[2].image`)
//! to byte spans, and the error type that names file, line, column, field and a hint.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

/// A scenario error, located in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    pub file: String,
    /// 1-based; 0 when the error is not about a place in the text (an unreadable file).
    pub line: usize,
    pub col: usize,
    /// Dotted path: `step[1].action` (empty for syntax errors).
    pub field: String,
    pub message: String,
    pub hint: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.col)?;
        }
        write!(f, ": ")?;
        if !self.field.is_empty() {
            write!(f, "field `{}`: ", self.field)?;
        }
        write!(f, "{}", self.message)?;
        if !self.hint.is_empty() {
            write!(f, "\n  hint: {}", self.hint)?;
        }
        Ok(())
    }
}

impl std::error::Error for ScenarioError {}

impl From<fake_registry::config::ConfigError> for ScenarioError {
    fn from(e: fake_registry::config::ConfigError) -> Self {
        ScenarioError {
            file: e.origin,
            line: e.line,
            col: e.col,
            field: e.field,
            message: e.message,
            hint: e.hint,
        }
    }
}

/// Every key and value of a parsed document, by dotted path.
#[derive(Debug, Default)]
pub struct PathIndex {
    /// (span, path, is_key)
    spans: Vec<(Range<usize>, String, bool)>,
    values: BTreeMap<String, Range<usize>>,
}

impl PathIndex {
    pub fn build(doc: &toml::de::DeTable<'_>) -> Self {
        let mut index = PathIndex::default();
        index.table("", doc);
        index
    }

    fn table(&mut self, prefix: &str, table: &toml::de::DeTable<'_>) {
        for (k, v) in table {
            let path = join(prefix, k.get_ref());
            self.spans.push((k.span(), path.clone(), true));
            self.value(&path, v);
        }
    }

    fn value(&mut self, path: &str, v: &toml::Spanned<toml::de::DeValue<'_>>) {
        self.spans.push((v.span(), path.to_owned(), false));
        self.values.insert(path.to_owned(), v.span());
        match v.get_ref() {
            toml::de::DeValue::Table(t) => self.table(path, t),
            toml::de::DeValue::Array(a) => {
                for (i, item) in a.iter().enumerate() {
                    self.value(&format!("{path}[{i}]"), item);
                }
            }
            _ => {}
        }
    }

    /// The innermost path whose key or value span holds `span`.
    pub fn path_at(&self, span: &Range<usize>) -> Option<&str> {
        self.spans
            .iter()
            .filter(|(s, _, _)| s.start <= span.start && span.end <= s.end.max(s.start + 1))
            .filter(|(s, _, _)| s.start < s.end)
            .min_by_key(|(s, p, is_key)| (s.end - s.start, usize::MAX - p.len(), !is_key))
            .map(|(_, p, _)| p.as_str())
    }

    /// The span of `path`, or of its nearest ancestor that has one.
    pub fn span_of(&self, path: &str) -> Option<Range<usize>> {
        let mut p = path;
        loop {
            if let Some(s) = self.values.get(p) {
                return Some(s.clone());
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
        }
    }
}

pub fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_owned()
    } else {
        format!("{parent}.{child}")
    }
}

/// Turns spans and fields into [`ScenarioError`]s for one file.
pub struct Locator<'a> {
    pub text: &'a str,
    pub file: &'a str,
}

impl Locator<'_> {
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }

    pub fn at_span(
        &self,
        span: Range<usize>,
        field: &str,
        message: String,
        hint: String,
    ) -> ScenarioError {
        let (line, col) = self.line_col(span.start);
        ScenarioError {
            file: self.file.to_owned(),
            line,
            col,
            field: field.to_owned(),
            message,
            hint,
        }
    }

    pub fn at_field(
        &self,
        index: &PathIndex,
        field: &str,
        message: String,
        hint: &str,
    ) -> ScenarioError {
        let span = index.span_of(field).unwrap_or(0..0);
        self.at_span(span, field, message, hint.to_owned())
    }

    /// A `toml` syntax or type error: its span, the field there, and a hint.
    pub fn toml_error(&self, e: &toml::de::Error, index: Option<&PathIndex>) -> ScenarioError {
        let message = e.message().trim().to_owned();
        let span = e.span().unwrap_or(0..0);
        let Some(index) = index else {
            return self.at_span(
                span,
                "",
                message,
                "fix the TOML syntax at this place".into(),
            );
        };
        let mut field = index.path_at(&span).unwrap_or("").to_owned();
        let mut span = span;
        if let Some(missing) = between(&message, "missing field `", "`") {
            field = join(&field, missing);
        } else if let Some(unknown) = between(&message, "unknown field `", "`")
            && !field.ends_with(&format!(".{unknown}"))
            && field != unknown
        {
            let candidate = join(&field, unknown);
            if let Some(s) = index.values.get(&candidate) {
                span = s.clone();
                field = candidate;
            }
        }
        let hint = hint_for(&message);
        self.at_span(span, &field, message, hint)
    }
}

fn between<'m>(text: &'m str, start: &str, end: &str) -> Option<&'m str> {
    let from = text.find(start)? + start.len();
    let len = text[from..].find(end)?;
    Some(&text[from..from + len])
}

fn hint_for(message: &str) -> String {
    if message.starts_with("unknown field") {
        // serde lists the valid keys in the message ("expected one of …")
        "remove the key or rename it to one of the valid keys listed".into()
    } else if message.starts_with("missing field") {
        "add the field; see scenarios/README.md for the format".into()
    } else if message.starts_with("unknown variant") {
        "use one of the values listed".into()
    } else if message.starts_with("invalid type") {
        "check the value's type (string, integer, table, array)".into()
    } else {
        "see scenarios/README.md for the scenario format".into()
    }
}
