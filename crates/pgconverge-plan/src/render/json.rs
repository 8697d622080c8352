//! The JSON plan view (`plan --json`): a documented, versioned format of its own, not a dump
//! of internal types. Its JSON Schema is `schemas/plan.schema.json`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::hazard::HazardKind;
use crate::lifecycle::{BootstrapSpec, LifecycleStep};
use crate::plan::Plan;

/// A pgconverge plan, as printed by `pgconverge plan --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PlanView {
    /// Format version of this document; incompatible changes bump it.
    pub format_version: u32,
    pub pgconverge_version: String,
    /// sha256 of the configuration the plan was made from.
    pub config_fingerprint: String,
    pub nodes: Vec<NodeView>,
    /// Unmet prerequisites. When present the plan cannot be applied.
    pub blockers: Vec<BlockerView>,
    /// What does not stop the plan but needs attention soon (a key block nearly used up).
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Steps in execution order (grouped by node).
    pub changes: Vec<ChangeView>,
    /// Nodes leaving the mesh (known to the state, no longer configured).
    pub departures: Vec<DepartureView>,
    pub summary: SummaryView,
}

/// A node leaving the mesh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DepartureView {
    pub node: String,
    pub reachable: bool,
    /// Why it could not be read, when it could not.
    pub error: Option<String>,
}

/// What a joining node's bootstrap copies.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BootstrapView {
    /// The member the rows are copied from.
    pub donor: String,
    /// Why that member.
    pub donor_choice: String,
    /// Members whose changes the donor must have applied before the copy (all but the donor).
    pub waits_for: Vec<String>,
    pub tables: Vec<TableCopyView>,
    /// Objects outside the model the joining node gets from the donor, in creation order.
    #[serde(default)]
    pub objects: Vec<CarriedObjectView>,
    /// Sum of the donor's estimates; null when a table was never analysed.
    pub estimated_rows: Option<i64>,
    pub estimated_bytes: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TableCopyView {
    /// `schema.table`.
    pub table: String,
    pub estimated_rows: Option<i64>,
    pub estimated_bytes: i64,
}

/// One object outside the model a bootstrap creates on the joining node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CarriedObjectView {
    /// `function`, `procedure`, `view`, `materialized view`, `trigger`, `policy`,
    /// `row security` or `grant`.
    pub kind: String,
    /// e.g. `public.f(integer)`, `audit on public.t`, `SELECT on table public.t to app`.
    pub name: String,
}

/// What a leaving node's drain waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DrainView {
    /// Remaining nodes that must apply everything the leaving node wrote.
    pub subscribers: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NodeView {
    pub name: String,
    /// `host:port` pgconverge connects to.
    pub address: String,
    /// sha256 of the node's catalog structure when the plan was made.
    pub catalog_fingerprint: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BlockerView {
    pub node: String,
    pub setting: String,
    pub current: String,
    pub required: String,
    pub fix: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ChangeView {
    /// Step number, 0-based, unique within the plan.
    pub id: usize,
    pub node: String,
    /// `<kind> <name>`, e.g. `table public.users`.
    pub address: String,
    /// What the human plan calls the step: the address, or `bootstrap n4 from n1`,
    /// `drain n3` for a node joining or leaving.
    pub label: String,
    /// Object kind: schema, type, table, column, constraint, index, partition, replica identity,
    /// function, trigger, publication, subscription, slot, membership, key slot, sql file.
    pub kind: String,
    pub name: String,
    /// Terraform-style actions: `["create"]`, `["update"]`, `["delete"]`,
    /// `["delete", "create"]` (replace).
    pub actions: Vec<String>,
    /// Why the change is needed, when not simply missing.
    pub reason: Option<String>,
    /// True when a managed object was changed or removed outside pgconverge.
    pub drift: bool,
    /// What could go wrong, each with its kind.
    pub hazards: Vec<HazardView>,
    /// Whether the statements run in one transaction.
    pub transactional: bool,
    /// Runs behind the gate: on every node at once, in one transaction per node holding the
    /// table's writers, committed everywhere only when every node succeeded.
    pub gated: bool,
    /// What the rows already on the node must meet, checked on every node before any node
    /// is changed, e.g. `new UNIQUE (email) needs no duplicate values`.
    pub data_checks: Vec<String>,
    /// Ids of the steps that must complete first.
    pub depends_on: Vec<usize>,
    /// The statements, passwords redacted.
    pub sql: Vec<String>,
    /// Unified diff of a changed function body.
    pub body_diff: Option<String>,
    /// Set for a node joining a mesh that holds data.
    pub bootstrap: Option<BootstrapView>,
    /// Set for a node leaving the mesh.
    pub drain: Option<DrainView>,
}

/// One hazard of a change: `{ "kind": "table_rewrite", "message": "…" }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HazardView {
    pub kind: HazardKind,
    /// The sentence the human plan shows.
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SummaryView {
    pub add: usize,
    pub change: usize,
    pub destroy: usize,
}

impl PlanView {
    pub fn from_plan(plan: &Plan) -> PlanView {
        let summary = plan.summary();
        PlanView {
            format_version: plan.format_version,
            pgconverge_version: plan.pgconverge_version.clone(),
            config_fingerprint: plan.config_fingerprint.clone(),
            nodes: plan
                .nodes
                .iter()
                .map(|n| NodeView {
                    name: n.name.clone(),
                    address: n.address.clone(),
                    catalog_fingerprint: plan
                        .node_fingerprints
                        .get(&n.name)
                        .cloned()
                        .unwrap_or_default(),
                })
                .collect(),
            blockers: plan
                .blockers
                .iter()
                .map(|b| BlockerView {
                    node: b.node.clone(),
                    setting: b.setting.clone(),
                    current: b.current.clone(),
                    required: b.required.clone(),
                    fix: b.fix.clone(),
                })
                .collect(),
            warnings: plan.warnings.clone(),
            changes: plan
                .steps
                .iter()
                .map(|s| ChangeView {
                    id: s.id,
                    node: s.change.node.clone(),
                    address: s.change.address.to_string(),
                    kind: s.change.address.kind().to_string(),
                    name: s.change.address.name(),
                    actions: s
                        .change
                        .action
                        .json_actions()
                        .iter()
                        .map(|a| a.to_string())
                        .collect(),
                    reason: s.change.reason.clone(),
                    drift: s.change.drift,
                    hazards: s
                        .change
                        .hazards
                        .iter()
                        .map(|h| HazardView {
                            kind: h.kind,
                            message: h.message.clone(),
                        })
                        .collect(),
                    transactional: s.change.transactional,
                    gated: s.change.gated,
                    data_checks: s.change.data_checks.iter().map(|c| c.rule()).collect(),
                    depends_on: s.depends_on.clone(),
                    sql: s.change.statements.iter().map(|st| st.redacted()).collect(),
                    body_diff: s.change.body_diff.clone(),
                    label: s.change.label(),
                    bootstrap: match &s.change.lifecycle {
                        Some(LifecycleStep::Bootstrap(spec)) => Some(bootstrap_view(spec)),
                        _ => None,
                    },
                    drain: match &s.change.lifecycle {
                        Some(LifecycleStep::Drain(spec)) => Some(DrainView {
                            subscribers: spec.waits.iter().map(|w| w.subscriber.clone()).collect(),
                        }),
                        _ => None,
                    },
                })
                .collect(),
            departures: plan
                .departures
                .iter()
                .map(|d| DepartureView {
                    node: d.node.clone(),
                    reachable: d.unreachable.is_none(),
                    error: d.unreachable.clone(),
                })
                .collect(),
            summary: SummaryView {
                add: summary.add,
                change: summary.change,
                destroy: summary.destroy,
            },
        }
    }
}

fn bootstrap_view(spec: &BootstrapSpec) -> BootstrapView {
    BootstrapView {
        donor: spec.donor.clone(),
        donor_choice: spec.donor_choice.clone(),
        waits_for: spec.catch_up.iter().map(|w| w.publisher.clone()).collect(),
        tables: spec
            .tables
            .iter()
            .map(|t| TableCopyView {
                table: t.table.to_string(),
                estimated_rows: t.estimated_rows,
                estimated_bytes: t.estimated_bytes,
            })
            .collect(),
        objects: spec
            .outside_objects
            .iter()
            .map(|o| CarriedObjectView {
                kind: o.kind.clone(),
                name: o.name.clone(),
            })
            .collect(),
        estimated_rows: spec.estimated_rows,
        estimated_bytes: spec.estimated_bytes,
    }
}

/// The JSON Schema of [`PlanView`], pretty-printed with a trailing newline.
pub fn plan_view_schema() -> String {
    let schema = schemars::schema_for!(PlanView);
    let mut text = serde_json::to_string_pretty(&schema).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hazards_are_kind_and_message() {
        let hazard = HazardView {
            kind: HazardKind::TableRewrite,
            message: "rewrites the table".to_string(),
        };
        assert_eq!(
            serde_json::to_string(&hazard).expect("json"),
            r#"{"kind":"table_rewrite","message":"rewrites the table"}"#
        );
    }
}
