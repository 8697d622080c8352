//! Typed addresses of the objects pgconverge manages on a node. Their text form is what the
//! plan shows and what the state file records.

use std::fmt;

use pgconverge_model::catalog::QualifiedName;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ObjectAddress {
    Schema {
        name: String,
    },
    Table {
        table: QualifiedName,
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
}

impl ObjectAddress {
    /// The kind word shown in plans (`table`, `subscription`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            ObjectAddress::Schema { .. } => "schema",
            ObjectAddress::Table { .. } => "table",
            ObjectAddress::Column { .. } => "column",
            ObjectAddress::Constraint { .. } => "constraint",
            ObjectAddress::Index { .. } => "index",
            ObjectAddress::ReplicaIdentity { .. } => "replica identity",
            ObjectAddress::Function { .. } => "function",
            ObjectAddress::Trigger { .. } => "trigger",
            ObjectAddress::Publication { .. } => "publication",
            ObjectAddress::Subscription { .. } => "subscription",
            ObjectAddress::Slot { .. } => "slot",
        }
    }

    /// The object's name without the kind word.
    pub fn name(&self) -> String {
        match self {
            ObjectAddress::Schema { name }
            | ObjectAddress::Publication { name }
            | ObjectAddress::Subscription { name }
            | ObjectAddress::Slot { name } => name.clone(),
            ObjectAddress::Table { table } | ObjectAddress::ReplicaIdentity { table } => {
                table.to_string()
            }
            ObjectAddress::Column {
                table,
                column: name,
            }
            | ObjectAddress::Constraint { table, name }
            | ObjectAddress::Index { table, name }
            | ObjectAddress::Trigger { table, name } => format!("{table}.{name}"),
            ObjectAddress::Function { function } => format!("{function}()"),
        }
    }
}

impl fmt::Display for ObjectAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind(), self.name())
    }
}
