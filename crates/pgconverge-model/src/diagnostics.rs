//! Problems found in user input, each located by file, line:column and field path.

use std::collections::HashSet;
use std::fmt;

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// File the problem is in, as the user named it.
    pub file: String,
    /// 1-based line and column of the offending value (or of the enclosing object when the
    /// problem is a missing field). 0 when unknown.
    pub line: usize,
    pub column: usize,
    /// JSON path of the field, e.g. `tables[2].columns[0].type` (empty for the whole file).
    pub field: String,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)?;
        if !self.field.is_empty() {
            write!(f, ": {}", self.field)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Every problem found, in file then position order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            writeln!(f, "error: {d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// All diagnostics of a load, sorted by file and position. A semantic diagnostic for a
/// field that already has a structural one is dropped: one problem, one message.
pub(crate) fn merge(
    structural: Vec<Diagnostic>,
    duplicate_keys: Vec<Diagnostic>,
    unreadable: Vec<Diagnostic>,
    semantic: Vec<Diagnostic>,
) -> Vec<Diagnostic> {
    let explained: HashSet<(String, String)> = structural
        .iter()
        .map(|d| (d.file.clone(), d.field.clone()))
        .collect();
    let mut all = structural;
    all.extend(duplicate_keys);
    all.extend(unreadable);
    all.extend(
        semantic
            .into_iter()
            .filter(|d| !explained.contains(&(d.file.clone(), d.field.clone()))),
    );
    sort_diagnostics(&mut all);
    all
}

/// File, then position order; a diagnostic found twice is shown once.
fn sort_diagnostics(all: &mut Vec<Diagnostic>) {
    all.sort_by(|a, b| {
        (&a.file, a.line, a.column, &a.field, &a.message)
            .cmp(&(&b.file, b.line, b.column, &b.field, &b.message))
    });
    all.dedup();
}
