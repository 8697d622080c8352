//! A change is one step's worth of work on one node: what object, which action, the SQL that
//! performs it, and why it is needed.

use serde::{Deserialize, Serialize};

use crate::address::ObjectAddress;
use crate::dag::Phase;
use crate::hazard::Hazard;
use crate::lifecycle::LifecycleStep;
use crate::preflight::DataCheck;
use crate::statement::Statement;

/// What a change does to its object, with Terraform's symbols.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    Replace,
    Delete,
}

impl Action {
    pub fn symbol(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update => "~",
            Action::Replace => "-/+",
            Action::Delete => "-",
        }
    }

    /// Terraform's `actions` list for the JSON view.
    pub fn json_actions(self) -> &'static [&'static str] {
        match self {
            Action::Create => &["create"],
            Action::Update => &["update"],
            Action::Replace => &["delete", "create"],
            Action::Delete => &["delete"],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub node: String,
    pub address: ObjectAddress,
    pub action: Action,
    /// Run in order; in one transaction when `transactional`.
    pub statements: Vec<Statement>,
    /// False for statements PostgreSQL refuses inside a transaction block
    /// (CREATE/DROP SUBSCRIPTION with a slot).
    pub transactional: bool,
    /// Why this change is needed, when it is not simply "missing".
    pub reason: Option<String>,
    /// Unified diff of a function body that changed.
    pub body_diff: Option<String>,
    /// What could go wrong (table rewrites, locks, data loss).
    pub hazards: Vec<Hazard>,
    /// Execution phase on its node; earlier phases run first (see `dag`).
    pub phase: Phase,
    /// The object is one pgconverge manages and it was changed or removed outside pgconverge.
    #[serde(default)]
    pub drift: bool,
    /// The live object is exactly what pgconverge last applied (a generated function whose
    /// comment vouches for its body): the change comes from the desired state moving, so it
    /// is not drift even when pgconverge manages the object.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub applied_as_is: bool,
    /// Run behind the gate (see `gate`): on every node at once, in one transaction per node
    /// holding the tables' writers, committed on all nodes only when every node succeeded.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gated: bool,
    /// What the rows already on the node must meet for the statements to succeed, checked
    /// on every node before any node is changed (see `preflight`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_checks: Vec<DataCheck>,
    /// Work beyond the statements that involves other nodes (a join's copy, a drain), run by
    /// the engine before the statements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<LifecycleStep>,
}

impl Change {
    /// A change of `address` on `node` by `statements`, run in one transaction, with its
    /// phase and nothing else set.
    pub fn new(
        node: &str,
        address: ObjectAddress,
        action: Action,
        statements: Vec<Statement>,
    ) -> Change {
        Change {
            node: node.to_string(),
            phase: Phase::of(&address, action),
            address,
            action,
            statements,
            transactional: true,
            reason: None,
            body_diff: None,
            hazards: Vec::new(),
            drift: false,
            applied_as_is: false,
            gated: false,
            data_checks: Vec::new(),
            lifecycle: None,
        }
    }

    /// What the plan calls this change: its address, or what joining or leaving does for a
    /// node's membership (`bootstrap n4 from n1`, `drain n3`).
    pub fn label(&self) -> String {
        match (&self.address, &self.lifecycle) {
            (ObjectAddress::Membership { node }, Some(LifecycleStep::Bootstrap(spec))) => {
                format!("bootstrap {node} from {}", spec.donor)
            }
            (ObjectAddress::Membership { node }, Some(LifecycleStep::Drain(_))) => {
                format!("drain {node}")
            }
            _ => self.address.to_string(),
        }
    }
}
