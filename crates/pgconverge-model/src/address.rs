//! Typed addresses of the objects pgconverge manages on a node. Their text form
//! (`table public.users`, `column public.users.email`) is what plans show and what the state
//! file records; [`ObjectAddress::from_str`] reads it back.
//!
//! The text form is the kind word, a space, then the name. Single names (schema,
//! publication, subscription, slot) are written as they are. In dotted names (table,
//! function, column, …) a part that contains `.` or `"` is written in double quotes with
//! inner quotes doubled, as in SQL; every other part is written bare, so ordinary names read
//! exactly as they always have and the text parses back to the same address.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::catalog::QualifiedName;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ObjectAddress {
    Schema {
        name: String,
    },
    Table {
        table: QualifiedName,
    },
    /// An enum or domain type.
    Type {
        name: QualifiedName,
    },
    Column {
        table: QualifiedName,
        column: String,
    },
    Constraint {
        table: QualifiedName,
        name: String,
    },
    Index {
        table: QualifiedName,
        name: String,
    },
    /// A partition of a partitioned table, in the table's schema.
    Partition {
        table: QualifiedName,
        name: String,
    },
    ReplicaIdentity {
        table: QualifiedName,
    },
    Function {
        function: QualifiedName,
    },
    Trigger {
        table: QualifiedName,
        name: String,
    },
    Publication {
        name: String,
    },
    Subscription {
        name: String,
    },
    Slot {
        name: String,
    },
    /// The node's membership of the mesh (its row in `_pgconverge.membership`): created by
    /// joining (with a bootstrap copy when the mesh holds data), deleted by draining it.
    Membership {
        node: String,
    },
    /// The node's key slot (its row in `_pgconverge.key_slot`, with every other node's) and
    /// the bounds of its key sequences, inside that slot's block.
    KeySlot {
        node: String,
    },
    /// One of the config's `sql_files` run on the node (its row in `_pgconverge.sql_files`
    /// holds the sha256 of the contents last run), named as the config names it.
    SqlFile {
        name: String,
    },
}

/// Why a text is not an object address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{text:?} is not an object address: {problem}")]
pub struct AddressParseError {
    pub text: String,
    pub problem: String,
}

/// Kind words, two-word ones first so `replica identity` and `key slot` are tried before any
/// one-word kind.
const KINDS: [&str; 16] = [
    "replica identity",
    "key slot",
    "sql file",
    "schema",
    "table",
    "type",
    "column",
    "constraint",
    "index",
    "partition",
    "function",
    "trigger",
    "publication",
    "subscription",
    "slot",
    "membership",
];

impl ObjectAddress {
    /// The table an object belongs to (a table belongs to itself); `None` for objects that
    /// belong to no table.
    pub fn table(&self) -> Option<&QualifiedName> {
        match self {
            ObjectAddress::Table { table }
            | ObjectAddress::Column { table, .. }
            | ObjectAddress::Constraint { table, .. }
            | ObjectAddress::Index { table, .. }
            | ObjectAddress::Partition { table, .. }
            | ObjectAddress::ReplicaIdentity { table }
            | ObjectAddress::Trigger { table, .. } => Some(table),
            _ => None,
        }
    }

    /// The kind word shown in plans (`table`, `subscription`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            ObjectAddress::Schema { .. } => "schema",
            ObjectAddress::Table { .. } => "table",
            ObjectAddress::Type { .. } => "type",
            ObjectAddress::Column { .. } => "column",
            ObjectAddress::Constraint { .. } => "constraint",
            ObjectAddress::Index { .. } => "index",
            ObjectAddress::Partition { .. } => "partition",
            ObjectAddress::ReplicaIdentity { .. } => "replica identity",
            ObjectAddress::Function { .. } => "function",
            ObjectAddress::Trigger { .. } => "trigger",
            ObjectAddress::Publication { .. } => "publication",
            ObjectAddress::Subscription { .. } => "subscription",
            ObjectAddress::Slot { .. } => "slot",
            ObjectAddress::Membership { .. } => "membership",
            ObjectAddress::KeySlot { .. } => "key slot",
            ObjectAddress::SqlFile { .. } => "sql file",
        }
    }

    /// The object's name without the kind word.
    pub fn name(&self) -> String {
        match self {
            ObjectAddress::Schema { name }
            | ObjectAddress::Publication { name }
            | ObjectAddress::Subscription { name }
            | ObjectAddress::Slot { name }
            | ObjectAddress::Membership { node: name }
            | ObjectAddress::KeySlot { node: name }
            | ObjectAddress::SqlFile { name } => name.clone(),
            ObjectAddress::Table { table }
            | ObjectAddress::ReplicaIdentity { table }
            | ObjectAddress::Type { name: table } => dotted(&[&table.schema, &table.name]),
            ObjectAddress::Column {
                table,
                column: name,
            }
            | ObjectAddress::Constraint { table, name }
            | ObjectAddress::Index { table, name }
            | ObjectAddress::Partition { table, name }
            | ObjectAddress::Trigger { table, name } => dotted(&[&table.schema, &table.name, name]),
            ObjectAddress::Function { function } => {
                format!("{}()", dotted(&[&function.schema, &function.name]))
            }
        }
    }
}

impl fmt::Display for ObjectAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind(), self.name())
    }
}

impl FromStr for ObjectAddress {
    type Err = AddressParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let fail = |problem: &str| AddressParseError {
            text: text.to_string(),
            problem: problem.to_string(),
        };
        let (kind, name) = KINDS
            .iter()
            .find_map(|kind| {
                text.strip_prefix(kind)
                    .and_then(|rest| rest.strip_prefix(' '))
                    .map(|name| (*kind, name))
            })
            .ok_or_else(|| fail("it does not start with a known kind word and a space"))?;
        let qualified = |name: &str| -> Result<QualifiedName, AddressParseError> {
            match split_dotted(name).map_err(|p| fail(&p))?.as_slice() {
                [schema, name] => Ok(QualifiedName::new(schema, name)),
                _ => Err(fail("a schema-qualified name has two dotted parts")),
            }
        };
        let in_table = |name: &str| -> Result<(QualifiedName, String), AddressParseError> {
            match split_dotted(name).map_err(|p| fail(&p))?.as_slice() {
                [schema, table, name] => Ok((QualifiedName::new(schema, table), name.clone())),
                _ => Err(fail("a name within a table has three dotted parts")),
            }
        };
        let single = || name.to_string();
        Ok(match kind {
            "schema" => ObjectAddress::Schema { name: single() },
            "publication" => ObjectAddress::Publication { name: single() },
            "subscription" => ObjectAddress::Subscription { name: single() },
            "slot" => ObjectAddress::Slot { name: single() },
            "membership" => ObjectAddress::Membership { node: single() },
            "key slot" => ObjectAddress::KeySlot { node: single() },
            "sql file" => ObjectAddress::SqlFile { name: single() },
            "table" => ObjectAddress::Table {
                table: qualified(name)?,
            },
            "type" => ObjectAddress::Type {
                name: qualified(name)?,
            },
            "replica identity" => ObjectAddress::ReplicaIdentity {
                table: qualified(name)?,
            },
            "function" => ObjectAddress::Function {
                function: qualified(
                    name.strip_suffix("()")
                        .ok_or_else(|| fail("a function name ends with ()"))?,
                )?,
            },
            "column" => {
                let (table, column) = in_table(name)?;
                ObjectAddress::Column { table, column }
            }
            "constraint" => {
                let (table, name) = in_table(name)?;
                ObjectAddress::Constraint { table, name }
            }
            "index" => {
                let (table, name) = in_table(name)?;
                ObjectAddress::Index { table, name }
            }
            "partition" => {
                let (table, name) = in_table(name)?;
                ObjectAddress::Partition { table, name }
            }
            _ => {
                let (table, name) = in_table(name)?;
                ObjectAddress::Trigger { table, name }
            }
        })
    }
}

/// Joins name parts with dots, quoting the parts that would otherwise be ambiguous.
fn dotted(parts: &[&str]) -> String {
    let mut out = String::new();
    for (index, part) in parts.iter().enumerate() {
        if index > 0 {
            out.push('.');
        }
        if part.contains(['.', '"']) {
            out.push('"');
            out.push_str(&part.replace('"', "\"\""));
            out.push('"');
        } else {
            out.push_str(part);
        }
    }
    out
}

/// Splits a dotted name into its parts, unquoting quoted ones: the inverse of [`dotted`].
fn split_dotted(text: &str) -> Result<Vec<String>, String> {
    let mut parts = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    Some('"') => break,
                    Some(c) => part.push(c),
                    None => return Err("a quoted part is not closed".to_string()),
                }
            }
            if !matches!(chars.peek(), None | Some('.')) {
                return Err("a quoted part is followed by something other than a dot".into());
            }
        } else {
            while let Some(c) = chars.next_if(|c| *c != '.') {
                part.push(c);
            }
        }
        parts.push(part);
        if chars.next().is_none() {
            return Ok(parts);
        }
    }
}

/// Serde for a set of addresses as a list of their text forms, sorted by text, so files
/// written before addresses were typed read back unchanged and new ones look the same.
pub mod text_set {
    use super::*;
    use serde::de::Error as _;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        set: &BTreeSet<ObjectAddress>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        let mut texts: Vec<String> = set.iter().map(ToString::to_string).collect();
        texts.sort();
        serializer.collect_seq(texts)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BTreeSet<ObjectAddress>, D::Error> {
        Vec::<String>::deserialize(deserializer)?
            .iter()
            .map(|text| text.parse().map_err(D::Error::custom))
            .collect()
    }
}

/// Serde for address sets by node name, each set as [`text_set`] writes it.
pub mod text_sets_by_node {
    use super::*;
    use serde::{Deserializer, Serializer};

    struct Borrowed<'a>(&'a BTreeSet<ObjectAddress>);

    impl Serialize for Borrowed<'_> {
        fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
            text_set::serialize(self.0, serializer)
        }
    }

    #[derive(Deserialize)]
    #[serde(transparent)]
    struct Owned(#[serde(with = "text_set")] BTreeSet<ObjectAddress>);

    pub fn serialize<S: Serializer>(
        sets: &BTreeMap<String, BTreeSet<ObjectAddress>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_map(sets.iter().map(|(node, set)| (node, Borrowed(set))))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BTreeMap<String, BTreeSet<ObjectAddress>>, D::Error> {
        let sets = BTreeMap::<String, Owned>::deserialize(deserializer)?;
        Ok(sets.into_iter().map(|(node, set)| (node, set.0)).collect())
    }
}

#[cfg(test)]
mod tests;
