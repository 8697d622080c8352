//! A joining node's bootstrap: which member it copies from, what must be true before the copy
//! (the joiner's slots exist on every member; the donor has applied every other member's
//! changes up to where the joiner's slot on that member starts), and what is copied (every
//! replicated table and the conflict registers, under one snapshot of the donor).
//!
//! Why nothing is lost: a change a member commits before the joiner's slot on it is created
//! is in the donor's snapshot (the donor applied it before the copy began); a change after it
//! is streamed by the joiner's subscription from that slot. Changes in both arrive twice, and
//! merging a change twice leaves the registers as merging it once (docs/conflicts.md).

use pgconverge_model::catalog::{NodeCatalog, QualifiedName, TableCatalog};
use pgconverge_model::naming::{subscription_name, INTERNAL_SCHEMA};
use pgconverge_model::types::normalize_type;
use pgconverge_model::units::{describe_bytes, thousands};
use pgconverge_model::ObjectAddress;
use serde::{Deserialize, Serialize};

use super::membership::record_sql;
use super::merge::{row_merge, RowMergeSpec};
use super::outside::{carried_objects, carried_sql, describe_carried, CarriedObject};
use super::{LifecycleInput, LifecycleStep};
use crate::change::{Action, Change};
use crate::conflict::naming::{CLAIMS_TABLE, TOMBSTONES_TABLE};
use crate::desired::DesiredNode;
use crate::hazard::{Hazard, HazardKind};
use crate::prereq::Blocker;
use pgconverge_sql::{quote_ident, quote_qualified};

/// Everything the engine needs to bootstrap a joining node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BootstrapSpec {
    pub donor: String,
    /// Why this donor, for the plan.
    pub donor_choice: String,
    /// The joiner's slot on the donor; it must exist before the donor's snapshot is taken.
    pub donor_slot: String,
    /// Members other than the donor: the donor must have applied each one's changes up to the
    /// start of the joiner's slot on it.
    pub catch_up: Vec<CatchUpWait>,
    pub tables: Vec<TableCopySpec>,
    /// Run first in the joiner's copy transaction.
    pub joiner_setup_sql: Vec<String>,
    /// Run last in the joiner's copy transaction: the membership record.
    pub joiner_finish_sql: Vec<String>,
    /// The donor's objects outside the model that the joiner lacks, created in the copy
    /// transaction after the rows and before `joiner_finish_sql` (see `outside.rs`).
    #[serde(default)]
    pub outside_objects: Vec<CarriedObject>,
    /// Sum of the donor's row estimates; `None` when a table was never analysed.
    pub estimated_rows: Option<i64>,
    pub estimated_bytes: i64,
    /// The joiner's own rows merged into the copy (`merge_rows`), else `None`: a join
    /// copies into empty tables only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merge: Option<Box<RowMergeSpec>>,
}

/// The donor must have applied `publisher`'s changes up to where `joiner_slot` starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CatchUpWait {
    pub publisher: String,
    /// The joiner's slot on `publisher`.
    pub joiner_slot: String,
    /// The donor's slot on `publisher`: its confirmed position says what the donor applied.
    pub donor_slot: String,
}

/// One table's copy from the donor into the joiner.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableCopySpec {
    pub table: QualifiedName,
    pub copy_out_sql: String,
    pub copy_in_sql: String,
    /// One boolean: whether the joiner's table already holds rows.
    pub holds_rows_sql: String,
    /// `None` when the donor never analysed the table.
    pub estimated_rows: Option<i64>,
    pub estimated_bytes: i64,
}

/// The bootstrap change of `node`, copying from a donor among `members` (never empty).
pub(super) fn bootstrap_change(
    input: &LifecycleInput<'_>,
    node: &DesiredNode,
    members: &[&str],
) -> Result<Change, Blocker> {
    let (donor, donor_choice) = choose_donor(input, node, members)?;
    let donor_catalog = input.observed.get(donor).cloned().unwrap_or_default();
    let catch_up = members
        .iter()
        .filter(|m| **m != donor)
        .map(|publisher| CatchUpWait {
            publisher: publisher.to_string(),
            joiner_slot: subscription_name(&node.name, publisher),
            donor_slot: subscription_name(donor, publisher),
        })
        .collect();
    let tables = copied_tables(node, &donor_catalog);
    let joiner_catalog = input.observed.get(&node.name).cloned().unwrap_or_default();
    let carried = carried_objects(node, donor, &donor_catalog, &joiner_catalog)?;
    let estimated_rows = tables
        .iter()
        .try_fold(0i64, |sum, t| t.estimated_rows.map(|r| sum + r));
    let estimated_bytes = tables.iter().map(|t| t.estimated_bytes).sum();
    let spec = BootstrapSpec {
        donor: donor.to_string(),
        donor_choice,
        donor_slot: subscription_name(&node.name, donor),
        catch_up,
        tables,
        // Stamps are copied as they are: no local trigger may restamp or log a copied row,
        // and foreign keys are not checked (the donor's rows already passed them).
        joiner_setup_sql: vec!["SET LOCAL session_replication_role = replica".into()],
        joiner_finish_sql: vec![record_sql(&node.name, Some(donor))],
        outside_objects: carried.objects,
        estimated_rows,
        estimated_bytes,
        merge: merges_rows(input, node)
            .then(|| row_merge(input.config, node))
            .flatten()
            .map(Box::new),
    };
    let mut change = change_for(node, spec);
    if !carried.left_behind.is_empty() {
        change.hazards.push(Hazard::new(
            HazardKind::NotCopied,
            format!(
                "not copied to {}: {}",
                node.name,
                carried.left_behind.join(", ")
            ),
        ));
    }
    Ok(change)
}

impl BootstrapSpec {
    /// Everything the joiner runs in its copy transaction after the rows: the objects
    /// outside the model, then the membership record.
    pub fn joiner_after_copy_sql(&self) -> Vec<String> {
        carried_sql(&self.outside_objects)
            .into_iter()
            .chain(self.joiner_finish_sql.iter().cloned())
            .collect()
    }
}

/// Whether `node` is configured to merge the rows it holds into the mesh's.
pub(super) fn merges_rows(input: &LifecycleInput<'_>, node: &DesiredNode) -> bool {
    input
        .config
        .nodes
        .iter()
        .any(|n| n.name == node.name && n.merge_rows)
}

fn change_for(node: &DesiredNode, spec: BootstrapSpec) -> Change {
    let address = ObjectAddress::Membership {
        node: node.name.clone(),
    };
    let user_tables = spec.tables.len().saturating_sub(2);
    let objects = if spec.outside_objects.is_empty() {
        String::new()
    } else {
        format!(
            ", and {} from {}",
            describe_carried(&spec.outside_objects),
            spec.donor
        )
    };
    let reason = format!(
        "copies {user_tables} table{} and the conflict registers in one snapshot: {}{objects}; {}",
        if user_tables == 1 { "" } else { "s" },
        describe_size(spec.estimated_rows, spec.estimated_bytes),
        spec.donor_choice
    );
    let hazard = Hazard::new(
        HazardKind::LongCopy,
        format!(
            "{} keeps one snapshot open for the whole copy (its vacuum waits for it); {}'s \
             rows appear when the copy commits",
            spec.donor, node.name
        ),
    );
    let mut hazards = vec![hazard];
    if spec.merge.is_some() {
        hazards.push(Hazard::new(
            HazardKind::MergesRows,
            format!(
                "{node}'s rows are merged with the mesh's: keys only {node} holds are kept and \
                 replicated; where both hold a key the newer version stays (the mesh's for rows \
                 older than pgconverge) and {node}'s other version goes to its conflict ledger \
                 (kind merge)",
                node = node.name
            ),
        ));
        hazards.push(Hazard::new(
            HazardKind::BlocksWrites,
            format!(
                "writes to {}'s tables wait until the merge commits",
                node.name
            ),
        ));
    }
    let mut change = Change::new(&node.name, address, Action::Create, Vec::new());
    change.reason = Some(reason);
    change.hazards = hazards;
    change.lifecycle = Some(LifecycleStep::Bootstrap(spec));
    change
}

/// The donor: named on the command line or in the node's config, else the first member in
/// config order that receives from every other member (all its subscriptions enabled), else
/// the first member.
fn choose_donor<'m>(
    input: &LifecycleInput<'_>,
    node: &DesiredNode,
    members: &[&'m str],
) -> Result<(&'m str, String), Blocker> {
    let configured = input
        .config
        .nodes
        .iter()
        .find(|n| n.name == node.name)
        .and_then(|n| n.donor.as_deref());
    let named = input
        .donor
        .map(|d| (d, "chosen with --donor"))
        .or(configured.map(|d| (d, "named as donor in the config")));
    if let Some((name, how)) = named {
        return match members.iter().find(|m| **m == name) {
            Some(member) => Ok((member, format!("{name} {how}"))),
            None => Err(Blocker {
                node: node.name.clone(),
                setting: "donor".into(),
                current: name.to_string(),
                required: format!("a node that has joined the mesh ({})", members.join(", ")),
                fix: "name a member as donor, or leave the choice to the plan".into(),
            }),
        };
    }
    let receives_from_all = |member: &str| {
        input.observed.get(member).is_some_and(|catalog| {
            members.iter().filter(|m| **m != member).all(|publisher| {
                catalog
                    .subscriptions
                    .get(&subscription_name(member, publisher))
                    .is_some_and(|s| s.enabled)
            })
        })
    };
    Ok(match members.iter().find(|m| receives_from_all(m)) {
        Some(member) => (
            member,
            format!("{member}: the first member receiving from every other member"),
        ),
        None => (
            members[0],
            format!(
                "{}: the first member (none receives from every other member)",
                members[0]
            ),
        ),
    })
}

/// Every replicated table with the columns the joiner has, then the two registers.
fn copied_tables(node: &DesiredNode, donor: &NodeCatalog) -> Vec<TableCopySpec> {
    let mut copies: Vec<TableCopySpec> = node
        .tables
        .iter()
        .map(|t| {
            // Generated columns are computed by the joiner as the rows go in.
            let columns: Vec<&str> = t
                .columns
                .iter()
                .filter(|c| c.generated.is_none())
                .map(|c| c.name.as_str())
                .collect();
            let live = donor.tables.get(&t.name);
            // Binary COPY needs the same types on both sides; text converts.
            let binary = live.is_some_and(|live| {
                t.columns.iter().all(|c| {
                    live.column(&c.name)
                        .is_some_and(|lc| normalize_type(&lc.data_type) == c.data_type)
                })
            });
            table_copy(&t.name, &columns, binary, live)
        })
        .collect();
    for register in [TOMBSTONES_TABLE, CLAIMS_TABLE] {
        if let Some(table) = node
            .internal_tables
            .iter()
            .find(|t| t.name.schema == INTERNAL_SCHEMA && t.name.name == register)
        {
            let columns: Vec<&str> = table.columns.iter().map(|(c, _)| c.as_str()).collect();
            copies.push(table_copy(
                &table.name,
                &columns,
                true,
                donor.tables.get(&table.name),
            ));
        }
    }
    copies
}

fn table_copy(
    name: &QualifiedName,
    columns: &[&str],
    binary: bool,
    live: Option<&TableCatalog>,
) -> TableCopySpec {
    let table = quote_qualified(&name.schema, &name.name);
    let list = columns
        .iter()
        .map(|c| quote_ident(c))
        .collect::<Vec<_>>()
        .join(", ");
    let format = if binary { "binary" } else { "text" };
    TableCopySpec {
        table: name.clone(),
        copy_out_sql: format!("COPY (SELECT {list} FROM {table}) TO STDOUT (FORMAT {format})"),
        copy_in_sql: format!("COPY {table} ({list}) FROM STDIN (FORMAT {format})"),
        holds_rows_sql: format!("SELECT EXISTS (SELECT 1 FROM {table})"),
        estimated_rows: live.and_then(|t| (t.estimated_rows >= 0).then_some(t.estimated_rows)),
        estimated_bytes: live.map_or(0, |t| t.estimated_bytes.max(0)),
    }
}

/// `~3,000 rows, ~1.2 MiB` (or `size unknown` parts when never analysed).
pub fn describe_size(rows: Option<i64>, bytes: i64) -> String {
    let rows = match rows {
        Some(rows) => format!("~{} rows", thousands(rows)),
        None => "rows not yet counted (never analysed)".to_string(),
    };
    format!("{rows}, ~{}", describe_bytes(bytes.max(0) as u64))
}
