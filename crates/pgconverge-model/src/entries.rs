//! Reading a parsed file's entries into config types one by one, so that one entry that
//! does not deserialise does not hide the problems of the others. Shared by both formats.

use std::collections::HashSet;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::diagnostics::Diagnostic;
use crate::source_map::{Anchor, FieldPath, SourceFile};

/// Deserialises entries one by one, so one bad entry does not hide the others' problems.
pub(crate) struct PartReader<'a> {
    pub(crate) file: &'a SourceFile,
    pub(crate) structural: &'a [Diagnostic],
}

impl PartReader<'_> {
    /// `value` as a `T`; when it is not one and no structural diagnostic already explains
    /// why, a diagnostic with serde's reason goes to `unreadable`.
    pub(crate) fn read<T: DeserializeOwned>(
        &self,
        value: &Value,
        path: &FieldPath,
        unreadable: &mut Vec<Diagnostic>,
    ) -> Option<T> {
        match T::deserialize(value) {
            Ok(v) => Some(v),
            Err(e) => {
                let shown = path.to_string();
                let explained = self.structural.iter().any(|d| {
                    d.file == self.file.path
                        && (shown.is_empty()
                            || d.field == shown
                            || d.field.starts_with(&format!("{shown}."))
                            || d.field.starts_with(&format!("{shown}[")))
                });
                if !explained {
                    unreadable.push(self.file.diagnostic(
                        path,
                        Anchor::Value,
                        format!("could not be read: {e}"),
                    ));
                }
                None
            }
        }
    }

    /// Every readable entry of a JSON array, with its index, and the number of entries
    /// (`None` when `list` is not an array).
    pub(crate) fn read_list<T: DeserializeOwned>(
        &self,
        list: Option<&Value>,
        path: &FieldPath,
        unreadable: &mut Vec<Diagnostic>,
    ) -> (Vec<(usize, T)>, Option<usize>) {
        let Some(Value::Array(items)) = list else {
            return (Vec::new(), None);
        };
        let read = items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| self.read(item, &path.index(i), unreadable).map(|v| (i, v)))
            .collect();
        (read, Some(items.len()))
    }
}

/// Names of the table entries of `list` that were not read.
pub(crate) fn unreadable_table_names<T>(
    list: Option<&Value>,
    read: &[(usize, T)],
    name_of: impl Fn(&Value) -> Option<String>,
) -> HashSet<String> {
    let read: HashSet<usize> = read.iter().map(|(i, _)| *i).collect();
    let entries: Vec<&Value> = match list {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(Value::Object(map)) => map.values().collect(),
        _ => Vec::new(),
    };
    entries
        .into_iter()
        .enumerate()
        .filter(|(i, _)| !read.contains(i))
        .filter_map(|(_, v)| name_of(v))
        .collect()
}
