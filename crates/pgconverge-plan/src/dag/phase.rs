//! The phases a node's changes run in, earliest first: creations by kind, then drops.

use serde::{Deserialize, Serialize};

use crate::address::ObjectAddress;
use crate::change::Action;

/// Execution phase of a change on its node; the declaration order is the execution order.
/// On one node, ordering edges never point from a later phase to an earlier one, so a node's
/// steps run in phase order; edges between nodes may (a joining node's bootstrap waits for
/// the donor's subscriptions), which the topological sort honours. The phase also breaks
/// ties between steps that are ready together.
///
/// Serialised in the plan file as its snake_case name (`schemas`, `drop_subscriptions`):
/// a name survives adding a phase between two others, where a number would have to be
/// renumbered or left with gaps. The plan format version (2) changed with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Schemas,
    /// Enum and domain types: before the tables whose columns use them.
    Types,
    Tables,
    Columns,
    /// Constraints and indexes, and the replica identity, which may name a constraint's index.
    ConstraintsAndIndexes,
    /// The key slot register and the bounds of key sequences: after the tables and columns
    /// whose sequences they bound.
    KeySequences,
    Functions,
    Triggers,
    Publication,
    Slots,
    /// A node joining: its membership record, written with the bootstrap copy when the mesh
    /// holds data. After its publication and slots (a join interrupted before the copy
    /// commits is not mistaken for a member: membership is the record), before its
    /// subscriptions start (they resume from slots made before the copy's snapshot).
    Membership,
    Subscriptions,
    /// The config's SQL files, last: they may use any table, column or function, and on a
    /// joining node they run after the bootstrap has created the donor's objects.
    SqlFiles,
    /// A node leaving: drained first, so nothing it wrote is lost when the others stop
    /// subscribing to it.
    Drain,
    /// Subscriptions go first so nothing arrives while the rest is dropped.
    DropSubscriptions,
    DropTriggers,
    DropFunctions,
    DropConstraintsAndIndexes,
    DropPublication,
    DropSlots,
    /// Everything else: tables, columns, schemas.
    DropTablesAndSchemas,
}

impl Phase {
    /// The phase a change to `address` runs in.
    pub fn of(address: &ObjectAddress, action: Action) -> Phase {
        if action == Action::Delete {
            return match address {
                ObjectAddress::Subscription { .. } => Phase::DropSubscriptions,
                ObjectAddress::Trigger { .. } => Phase::DropTriggers,
                ObjectAddress::Function { .. } => Phase::DropFunctions,
                ObjectAddress::Constraint { .. } | ObjectAddress::Index { .. } => {
                    Phase::DropConstraintsAndIndexes
                }
                ObjectAddress::Publication { .. } => Phase::DropPublication,
                ObjectAddress::Slot { .. } => Phase::DropSlots,
                ObjectAddress::Membership { .. } => Phase::Drain,
                // Types go with the tables: after them (`tables_and_columns_dropped_before_types`).
                ObjectAddress::Type { .. } => Phase::DropTablesAndSchemas,
                _ => Phase::DropTablesAndSchemas,
            };
        }
        match address {
            ObjectAddress::Schema { .. } => Phase::Schemas,
            ObjectAddress::Type { .. } => Phase::Types,
            ObjectAddress::Table { .. } => Phase::Tables,
            ObjectAddress::Column { .. } => Phase::Columns,
            ObjectAddress::Constraint { .. }
            | ObjectAddress::Index { .. }
            | ObjectAddress::ReplicaIdentity { .. } => Phase::ConstraintsAndIndexes,
            ObjectAddress::Function { .. } => Phase::Functions,
            // With the triggers: each partition gets the TRUNCATE refusal, whose function
            // is created before.
            ObjectAddress::Trigger { .. } | ObjectAddress::Partition { .. } => Phase::Triggers,
            ObjectAddress::Publication { .. } => Phase::Publication,
            ObjectAddress::Slot { .. } => Phase::Slots,
            ObjectAddress::Subscription { .. } => Phase::Subscriptions,
            ObjectAddress::Membership { .. } => Phase::Membership,
            ObjectAddress::KeySlot { .. } => Phase::KeySequences,
            ObjectAddress::SqlFile { .. } => Phase::SqlFiles,
        }
    }

    /// Whether the phase removes objects (and so runs after every creation on its node).
    pub fn is_drop(self) -> bool {
        self >= Phase::Drain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_serialise_by_name() {
        let json = serde_json::to_string(&Phase::DropSubscriptions).expect("json");
        assert_eq!(json, "\"drop_subscriptions\"");
        let back: Phase = serde_json::from_str("\"constraints_and_indexes\"").expect("phase");
        assert_eq!(back, Phase::ConstraintsAndIndexes);
    }

    #[test]
    fn drops_come_after_every_creation() {
        assert!(Phase::Subscriptions < Phase::DropSubscriptions);
        assert!(!Phase::Subscriptions.is_drop());
        assert!(Phase::DropSubscriptions.is_drop());
        assert!(Phase::DropTablesAndSchemas.is_drop());
    }
}
