//! Node-unique integer keys: every node owns a slot, recorded in the key slot register
//! (`_pgconverge.key_slot`) on every node, and each of its key sequences (identity, serial,
//! or a default calling `nextval`) is bounded to its slot's block and starts above every value
//! of that block on any node. The planner only ever raises a sequence, never lowers it.
//! Why no two nodes can hand out the same value: docs/adopting.md, "Integer keys".

use std::collections::BTreeMap;

use pgconverge_model::catalog::{KeySequenceCatalog, NodeCatalog, QualifiedName};
use pgconverge_model::config::ClusterConfig;
use pgconverge_model::key_blocks::{KeyBlock, KeyWidth};
use pgconverge_model::naming::{INTERNAL_SCHEMA, KEY_SLOT_TABLE};

use crate::address::ObjectAddress;
use crate::change::{Action, Change};
use crate::conflict::InternalTable;
use crate::desired::{DesiredColumn, DesiredNode, DesiredTable, KeyGenerator};
use crate::diff::NodeDiffInput;
use crate::prereq::Blocker;
use crate::statement::Statement;

/// Share of a block used at which the plan warns, in percent.
const WARN_AT_PERCENT: i64 = 90;

/// `_pgconverge.key_slot`: one row per node the mesh has ever had. Rows are never deleted,
/// so a node that left keeps its slot retired and a node that comes back finds its own.
pub fn key_slot_table() -> InternalTable {
    let table = pgconverge_sql::quote_qualified(INTERNAL_SCHEMA, KEY_SLOT_TABLE);
    InternalTable {
        name: QualifiedName::new(INTERNAL_SCHEMA, KEY_SLOT_TABLE),
        create_sql: vec![format!(
            "CREATE TABLE IF NOT EXISTS {table} (\n  \
             node text PRIMARY KEY,\n  \
             slot int8 NOT NULL UNIQUE CHECK (slot >= 1),\n  \
             assigned_at timestamptz NOT NULL DEFAULT now()\n)"
        )],
        columns: vec![
            ("node".into(), "text".into()),
            ("slot".into(), "bigint".into()),
            ("assigned_at".into(), "timestamp with time zone".into()),
        ],
    }
}

/// Whether any configured column draws its values from a sequence.
pub fn has_key_generators(tables: &[DesiredTable]) -> bool {
    tables
        .iter()
        .any(|t| t.columns.iter().any(|c| c.generator.is_some()))
}

/// Every node's slot, known and new, and what stops the assignment from being trusted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySlots {
    /// Node name → slot: every configured node, and every node a register remembers.
    pub by_node: BTreeMap<String, i64>,
    pub blockers: Vec<Blocker>,
}

/// Reads the registers of every node and gives each configured node without a slot the next
/// one never used. A node's own register decides its slot (a node restored from a backup
/// keeps it); the others' registers keep the slots of nodes that left or lost theirs.
pub fn assign_key_slots(
    config: &ClusterConfig,
    observed: &BTreeMap<String, NodeCatalog>,
) -> KeySlots {
    let mut slots = KeySlots::default();
    for (name, catalog) in observed {
        if let Some(slot) = catalog.key_slots.get(name) {
            slots.by_node.insert(name.clone(), *slot);
        }
    }
    for (holder, catalog) in observed {
        for (node, slot) in &catalog.key_slots {
            match slots.by_node.get(node) {
                None => {
                    slots.by_node.insert(node.clone(), *slot);
                }
                Some(known) if known != slot => slots.blockers.push(Blocker {
                    node: holder.clone(),
                    setting: "key slot register".into(),
                    current: format!("{node} has slot {slot}"),
                    required: format!("slot {known}, as recorded elsewhere"),
                    fix: format!(
                        "the registers (_pgconverge.key_slot) disagree about {node}; find out \
                         which node's values its keys carry and correct the row on {holder}"
                    ),
                }),
                Some(_) => {}
            }
        }
    }
    let mut owners: BTreeMap<i64, &str> = BTreeMap::new();
    for (node, slot) in &slots.by_node {
        if let Some(other) = owners.insert(*slot, node) {
            slots.blockers.push(Blocker {
                node: node.clone(),
                setting: "key slot register".into(),
                current: format!("slot {slot} is recorded for both {other} and {node}"),
                required: "one node per slot".into(),
                fix: "correct _pgconverge.key_slot on the nodes that hold the wrong row".into(),
            });
        }
    }
    let mut next = slots.by_node.values().max().copied().unwrap_or(0) + 1;
    for node in &config.nodes {
        if !slots.by_node.contains_key(&node.name) {
            slots.by_node.insert(node.name.clone(), next);
            next += 1;
        }
    }
    slots
}

/// A key column whose width has no block for its node's slot cannot be made node-unique.
pub fn slot_blockers(desired: &[DesiredNode], slots: &KeySlots) -> Vec<Blocker> {
    let mut out = Vec::new();
    for node in desired {
        let Some(slot) = slots.by_node.get(&node.name) else {
            continue;
        };
        for (table, column, width) in key_columns(&node.tables) {
            if width.block(*slot).is_none() {
                out.push(Blocker {
                    node: node.name.clone(),
                    setting: format!("key column {table}.{}", column.name),
                    current: format!("slot {slot}, {}", width.type_name()),
                    required: format!("a slot of at most {}", width.max_slot()),
                    fix: format!(
                        "a {} key has room for {} nodes over the mesh's life; widen the column \
                         (bigint has room for {})",
                        width.type_name(),
                        width.max_slot(),
                        KeyWidth::Big.max_slot()
                    ),
                });
            }
        }
    }
    out
}

/// Sequences that have used most of their block, or count down and so cannot be bounded.
pub fn key_warnings(
    desired: &[DesiredNode],
    observed: &BTreeMap<String, NodeCatalog>,
    slots: &KeySlots,
) -> Vec<String> {
    let mut out = Vec::new();
    for node in desired {
        let (Some(slot), Some(catalog)) = (slots.by_node.get(&node.name), observed.get(&node.name))
        else {
            continue;
        };
        for (table, column, width) in key_columns(&node.tables) {
            let (Some(block), Some(live)) =
                (width.block(*slot), live_sequence(catalog, table, column))
            else {
                continue;
            };
            if live.increment <= 0 {
                out.push(format!(
                    "node {}: {table}.{} draws from {} which counts down; pgconverge bounds only ascending sequences, so its values are not node-unique",
                    node.name, column.name, live.sequence
                ));
                continue;
            }
            let used = live.next_value.clamp(block.first, block.last) - block.first;
            // Both products fit: a block holds at most 2^48 values.
            if in_bounds(live, block) && used * 100 >= block.size() * WARN_AT_PERCENT {
                out.push(format!(
                    "node {}: {table}.{} has used {}% of its key block (slot {slot}, values {} to {}); plan a wider type before it runs out",
                    node.name,
                    column.name,
                    used * 100 / block.size(),
                    block.first,
                    block.last
                ));
            }
        }
    }
    out
}

/// The configured columns fed by a sequence, with their integer width.
fn key_columns(
    tables: &[DesiredTable],
) -> impl Iterator<Item = (&QualifiedName, &DesiredColumn, KeyWidth)> {
    tables.iter().flat_map(|t| {
        t.columns.iter().filter_map(move |c| {
            c.generator.as_ref()?;
            KeyWidth::of_type(&c.data_type).map(|w| (&t.name, c, w))
        })
    })
}

fn live_sequence<'c>(
    catalog: &'c NodeCatalog,
    table: &QualifiedName,
    column: &DesiredColumn,
) -> Option<&'c KeySequenceCatalog> {
    catalog
        .tables
        .get(table)?
        .key_sequences
        .iter()
        .find(|s| s.column == column.name)
}

fn in_bounds(live: &KeySequenceCatalog, block: KeyBlock) -> bool {
    live.min_value == block.first && live.max_value == block.last
}

/// The first value a sequence of `slot` may hand out: above every value of its block that
/// any node holds.
fn lowest_start(
    cluster: &BTreeMap<String, NodeCatalog>,
    table: &QualifiedName,
    column: &DesiredColumn,
    slot: i64,
    block: KeyBlock,
) -> i64 {
    cluster
        .values()
        .filter_map(|catalog| live_sequence(catalog, table, column))
        .filter_map(|live| live.block_maxima.get(&slot))
        .map(|max| max.saturating_add(1))
        .fold(block.first, i64::max)
}

pub(super) fn diff(input: &NodeDiffInput<'_>) -> Vec<Change> {
    let node = &input.desired.name;
    let Some(&slot) = input.key_slots.by_node.get(node) else {
        return Vec::new();
    };
    if !has_key_generators(&input.desired.tables) {
        return Vec::new();
    }
    let mut statements = Vec::new();
    let mut reasons = Vec::new();
    let missing: Vec<(&String, &i64)> = input
        .key_slots
        .by_node
        .iter()
        .filter(|(n, _)| !input.observed.key_slots.contains_key(*n))
        .collect();
    if !missing.is_empty() {
        statements.push(Statement::sql(ddl::register_sql(&missing)));
        let names: Vec<String> = missing.iter().map(|(n, s)| format!("{n}={s}")).collect();
        reasons.push(format!("record slots {}", names.join(", ")));
    }
    let mut live_bounds: BTreeMap<&QualifiedName, SequenceBound<'_>> = BTreeMap::new();
    for table in &input.desired.tables {
        for column in &table.columns {
            let Some(generator) = &column.generator else {
                continue;
            };
            let Some(width) = KeyWidth::of_type(&column.data_type) else {
                continue;
            };
            let Some(block) = width.block(slot) else {
                continue;
            };
            let lowest = lowest_start(input.cluster, &table.name, column, slot, block);
            let label = format!("{}.{}", table.name, column.name);
            match live_sequence(input.observed, &table.name, column) {
                Some(live) => {
                    let bound = live_bounds.entry(&live.sequence).or_insert(SequenceBound {
                        live,
                        width,
                        block,
                        lowest,
                        columns: Vec::new(),
                    });
                    bound.merge(width, block, lowest);
                    bound.columns.push(label);
                }
                None => {
                    // Made in this plan (a new table or column): bounded once it exists.
                    let sql = match generator {
                        KeyGenerator::Identity(_) => {
                            ddl::bound_identity_sql(table, column, block, lowest)
                        }
                        _ => ddl::bound_column_sequence_sql(table, column, block, lowest),
                    };
                    statements.push(Statement::sql(sql));
                    reasons.push(format!("{label} from {lowest}"));
                }
            }
        }
    }
    for bound in live_bounds.values() {
        if let Some((sql, reason)) = bound.statement() {
            statements.push(Statement::sql(sql));
            reasons.push(reason);
        }
    }
    if statements.is_empty() {
        return Vec::new();
    }
    let action = if input.observed.key_slots.contains_key(node) {
        Action::Update
    } else {
        Action::Create
    };
    let mut change = input.change(
        ObjectAddress::KeySlot { node: node.clone() },
        action,
        statements,
    );
    change.reason = Some(format!("slot {slot}: {}", reasons.join("; ")));
    vec![change]
}

/// What one live sequence must be bounded to. A sequence feeding several columns is bounded
/// once: to the block of the narrowest of them (the same choice on every node), above the
/// values of every one of them.
struct SequenceBound<'c> {
    live: &'c KeySequenceCatalog,
    width: KeyWidth,
    block: KeyBlock,
    lowest: i64,
    columns: Vec<String>,
}

impl SequenceBound<'_> {
    fn merge(&mut self, width: KeyWidth, block: KeyBlock, lowest: i64) {
        if width < self.width {
            self.width = width;
            self.block = block;
            self.lowest = lowest;
        } else if width == self.width {
            self.lowest = self.lowest.max(lowest);
        }
    }

    /// The statement bringing the sequence into its block, and why; `None` when it is there
    /// and already above every value of its block. Never lowers it.
    fn statement(&self) -> Option<(String, String)> {
        let (live, block) = (self.live, self.block);
        if live.increment <= 0 {
            return None;
        }
        let bounded = in_bounds(live, block);
        if bounded && live.next_value >= self.lowest {
            return None;
        }
        let inside = (block.first..=block.last).contains(&live.next_value);
        let start = if inside {
            self.lowest.max(live.next_value)
        } else {
            self.lowest
        };
        let label = self.columns.join(", ");
        let reason = if bounded {
            format!(
                "{label} raised from {} to {start} (values of its block exist up to {})",
                live.next_value,
                self.lowest - 1
            )
        } else {
            format!(
                "{label} bounded to {}..{} from {start} (was {}..{}, next {})",
                block.first, block.last, live.min_value, live.max_value, live.next_value
            )
        };
        Some((
            ddl::bound_sequence_sql(&live.sequence, block, start),
            reason,
        ))
    }
}

pub(super) mod ddl {
    use pgconverge_model::catalog::QualifiedName;
    use pgconverge_model::key_blocks::KeyBlock;
    use pgconverge_model::naming::{INTERNAL_SCHEMA, KEY_SLOT_TABLE};
    use pgconverge_sql::{quote_ident, quote_literal, quote_qualified};

    use crate::conflict::dollar_tag;
    use crate::desired::{DesiredColumn, DesiredTable};
    use crate::diff::table_sql_name;

    /// Records the slots a node's register lacks; a row already there is left as it is.
    pub fn register_sql(missing: &[(&String, &i64)]) -> String {
        let rows: Vec<String> = missing
            .iter()
            .map(|(node, slot)| format!("({}, {slot})", quote_literal(node)))
            .collect();
        format!(
            "INSERT INTO {} (node, slot) VALUES {} ON CONFLICT (node) DO NOTHING",
            quote_qualified(INTERNAL_SCHEMA, KEY_SLOT_TABLE),
            rows.join(", ")
        )
    }

    /// Bounds an existing sequence to `block`, next handing out `start`. `NO CYCLE`: a
    /// sequence that wrapped around would hand out its own block's values again.
    pub fn bound_sequence_sql(sequence: &QualifiedName, block: KeyBlock, start: i64) -> String {
        format!(
            "ALTER SEQUENCE {} {}",
            quote_qualified(&sequence.schema, &sequence.name),
            options(block, start)
        )
    }

    /// The same for an identity column made in the same plan, through its column.
    pub fn bound_identity_sql(
        table: &DesiredTable,
        column: &DesiredColumn,
        block: KeyBlock,
        start: i64,
    ) -> String {
        format!(
            "ALTER TABLE {} ALTER COLUMN {} SET MINVALUE {} SET MAXVALUE {} SET START WITH {start} SET NO CYCLE RESTART WITH {start}",
            table_sql_name(&table.name),
            quote_ident(&column.name),
            block.first,
            block.last
        )
    }

    /// The same for a sequence made in the same plan (a serial column), found when the step
    /// runs: the one the column owns, or the one its default calls.
    pub fn bound_column_sequence_sql(
        table: &DesiredTable,
        column: &DesiredColumn,
        block: KeyBlock,
        start: i64,
    ) -> String {
        let relation = quote_literal(&table_sql_name(&table.name));
        let block_sql = format!(
            " DECLARE seq pg_catalog.regclass; BEGIN \
             SELECT f.seqid::pg_catalog.regclass INTO STRICT seq FROM ( \
             SELECT dep.objid AS seqid FROM pg_catalog.pg_depend dep \
             JOIN pg_catalog.pg_attribute a ON a.attrelid = dep.refobjid AND a.attnum = dep.refobjsubid \
             WHERE dep.classid = 'pg_catalog.pg_class'::pg_catalog.regclass \
             AND dep.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass \
             AND dep.refobjid = {relation}::pg_catalog.regclass AND a.attname = {column} \
             AND dep.deptype IN ('a', 'i') \
             UNION SELECT dep.refobjid FROM pg_catalog.pg_attrdef d \
             JOIN pg_catalog.pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum \
             JOIN pg_catalog.pg_depend dep ON dep.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass AND dep.objid = d.oid \
             JOIN pg_catalog.pg_class s ON s.oid = dep.refobjid AND s.relkind = 'S' \
             WHERE d.adrelid = {relation}::pg_catalog.regclass AND a.attname = {column} \
             ) f LIMIT 1; \
             EXECUTE pg_catalog.format('ALTER SEQUENCE %s {options}', seq); \
             END ",
            column = quote_literal(&column.name),
            options = options(block, start)
        );
        let tag = dollar_tag(&block_sql);
        format!("DO {tag}{block_sql}{tag}")
    }

    fn options(block: KeyBlock, start: i64) -> String {
        format!(
            "MINVALUE {} MAXVALUE {} START WITH {start} RESTART WITH {start} NO CYCLE",
            block.first, block.last
        )
    }
}

#[cfg(test)]
mod tests;
