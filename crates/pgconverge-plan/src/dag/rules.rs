//! The ordering rules, one function each: a rule names one reason a change must wait for
//! another and adds the edges for it. `RULES` lists them; the plan's graph is their union,
//! so a new kind of dependency is a new function and one line in the list.

use std::collections::{BTreeSet, HashMap};

use pgconverge_model::catalog::QualifiedName;
use pgconverge_model::naming::INTERNAL_SCHEMA;

use pgconverge_model::naming::subscription_name;

use crate::address::ObjectAddress;
use crate::change::{Action, Change};
use crate::conflict::naming::SHARED_FUNCTIONS;
use crate::dag::GraphContext;
use crate::lifecycle::{BootstrapSpec, LifecycleStep};

/// A named ordering rule.
pub struct Rule {
    pub name: &'static str,
    pub add_edges: fn(&RuleInput<'_>, &mut Edges),
}

/// Every ordering rule, creations first, then drops.
pub const RULES: &[Rule] = &[
    Rule {
        name: "schema_before_its_tables",
        add_edges: schema_before_its_tables,
    },
    Rule {
        name: "schema_before_its_functions",
        add_edges: schema_before_its_functions,
    },
    Rule {
        name: "schema_before_its_types",
        add_edges: schema_before_its_types,
    },
    Rule {
        name: "types_before_tables_and_columns",
        add_edges: types_before_tables_and_columns,
    },
    Rule {
        name: "enum_types_before_domains",
        add_edges: enum_types_before_domains,
    },
    Rule {
        name: "check_added_before_validated",
        add_edges: check_added_before_validated,
    },
    Rule {
        name: "table_before_its_parts",
        add_edges: table_before_its_parts,
    },
    Rule {
        name: "constraints_before_replica_identity",
        add_edges: constraints_before_replica_identity,
    },
    Rule {
        name: "tables_and_columns_before_key_slot",
        add_edges: tables_and_columns_before_key_slot,
    },
    Rule {
        name: "internal_tables_before_functions",
        add_edges: internal_tables_before_functions,
    },
    Rule {
        name: "shared_functions_before_table_functions",
        add_edges: shared_functions_before_table_functions,
    },
    Rule {
        name: "referenced_table_and_key_before_foreign_key",
        add_edges: referenced_table_and_key_before_foreign_key,
    },
    Rule {
        name: "function_before_trigger",
        add_edges: function_before_trigger,
    },
    Rule {
        name: "change_log_before_publication",
        add_edges: change_log_before_publication,
    },
    Rule {
        name: "apply_machinery_before_subscription",
        add_edges: apply_machinery_before_subscription,
    },
    Rule {
        name: "publisher_slot_before_subscription",
        add_edges: publisher_slot_before_subscription,
    },
    Rule {
        name: "publication_before_peer_subscriptions",
        add_edges: publication_before_peer_subscriptions,
    },
    Rule {
        name: "joiner_slots_before_bootstrap",
        add_edges: joiner_slots_before_bootstrap,
    },
    Rule {
        name: "donor_changes_before_bootstrap",
        add_edges: donor_changes_before_bootstrap,
    },
    Rule {
        name: "bootstrap_before_joiner_subscribes",
        add_edges: bootstrap_before_joiner_subscribes,
    },
    Rule {
        name: "sql_files_last_in_config_order",
        add_edges: sql_files_last_in_config_order,
    },
    Rule {
        name: "drops_after_everything_else",
        add_edges: drops_after_everything_else,
    },
    Rule {
        name: "tables_and_columns_dropped_before_types",
        add_edges: tables_and_columns_dropped_before_types,
    },
    Rule {
        name: "triggers_dropped_before_their_function",
        add_edges: triggers_dropped_before_their_function,
    },
    Rule {
        name: "subscriptions_dropped_before_publication",
        add_edges: subscriptions_dropped_before_publication,
    },
    Rule {
        name: "drain_before_peers_unsubscribe",
        add_edges: drain_before_peers_unsubscribe,
    },
    Rule {
        name: "drain_before_departing_slots_drop",
        add_edges: drain_before_departing_slots_drop,
    },
    Rule {
        name: "drain_before_departing_node_drops",
        add_edges: drain_before_departing_node_drops,
    },
    Rule {
        name: "peers_unsubscribe_before_departing_publication_and_slots",
        add_edges: peers_unsubscribe_before_departing_publication_and_slots,
    },
];

/// The union of every rule's edges over `changes`, as (from, to) change indices.
pub fn edges(changes: &[Change], ctx: &GraphContext<'_>) -> BTreeSet<(usize, usize)> {
    let input = RuleInput::new(changes, ctx);
    let mut edges = Edges::default();
    for rule in RULES {
        (rule.add_edges)(&input, &mut edges);
    }
    edges.0
}

/// Edges `from → to` (`from` runs first) between change indices. A set: the graph does not
/// depend on which rule found an edge first.
#[derive(Debug, Default)]
pub struct Edges(pub BTreeSet<(usize, usize)>);

impl Edges {
    /// Adds `from → to` when there is a `from` and it is another change.
    fn add(&mut self, from: Option<usize>, to: usize) {
        if let Some(from) = from.filter(|from| *from != to) {
            self.0.insert((from, to));
        }
    }
}

/// The changes being ordered and the lookups the rules share.
pub struct RuleInput<'a> {
    changes: &'a [Change],
    ctx: &'a GraphContext<'a>,
    by_address: HashMap<(&'a str, &'a ObjectAddress), usize>,
}

impl<'a> RuleInput<'a> {
    pub fn new(changes: &'a [Change], ctx: &'a GraphContext<'a>) -> RuleInput<'a> {
        let by_address = changes
            .iter()
            .enumerate()
            .map(|(i, c)| ((c.node.as_str(), &c.address), i))
            .collect();
        RuleInput {
            changes,
            ctx,
            by_address,
        }
    }

    /// The change to `address` on `node`, if one is planned.
    fn find(&self, node: &str, address: &ObjectAddress) -> Option<usize> {
        self.by_address.get(&(node, address)).copied()
    }

    /// Changes that create or alter (not drop), with their index.
    fn creations(&self) -> impl Iterator<Item = (usize, &'a Change)> + '_ {
        self.changes
            .iter()
            .enumerate()
            .filter(|(_, c)| c.action != Action::Delete)
    }

    /// Changes that drop, with their index.
    fn drops(&self) -> impl Iterator<Item = (usize, &'a Change)> + '_ {
        self.changes
            .iter()
            .enumerate()
            .filter(|(_, c)| c.action == Action::Delete)
    }

    /// Per node, the steps creating internal tables (the change log among them).
    fn internal_tables(&self) -> HashMap<&'a str, Vec<usize>> {
        let mut steps: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, c) in self.creations() {
            if matches!(&c.address, ObjectAddress::Table { table } if table.schema == INTERNAL_SCHEMA)
            {
                steps.entry(c.node.as_str()).or_default().push(i);
            }
        }
        steps
    }

    /// Per node, the internal tables plus the triggers on them and the functions those
    /// triggers call: what applies incoming changes.
    fn apply_machinery(&self) -> HashMap<&'a str, Vec<usize>> {
        let mut steps = self.internal_tables();
        for (i, c) in self.creations() {
            let node = c.node.as_str();
            if let ObjectAddress::Trigger { table, .. } = &c.address {
                if table.schema == INTERNAL_SCHEMA {
                    steps.entry(node).or_default().push(i);
                    let function = self.ctx.trigger_functions.get(&c.address);
                    if let Some(f) = function.and_then(|f| self.find(node, f)) {
                        steps.entry(node).or_default().push(f);
                    }
                }
            }
        }
        steps
    }

    /// Per (node, table), the steps creating constraints other than foreign keys: the keys a
    /// foreign key may reference.
    fn key_constraints(&self) -> HashMap<(&'a str, &'a QualifiedName), Vec<usize>> {
        let mut steps: HashMap<(&str, &QualifiedName), Vec<usize>> = HashMap::new();
        for (i, c) in self.creations() {
            if let ObjectAddress::Constraint { table, .. } = &c.address {
                let key = (c.node.clone(), c.address.clone());
                if !self.ctx.foreign_key_targets.contains_key(&key) {
                    steps.entry((c.node.as_str(), table)).or_default().push(i);
                }
            }
        }
        steps
    }
}

/// A table and everything on it is created inside its schema.
fn schema_before_its_tables(input: &RuleInput<'_>, edges: &mut Edges) {
    for (i, c) in input.creations() {
        if let Some(table) = c.address.table() {
            let schema = ObjectAddress::Schema {
                name: table.schema.clone(),
            };
            edges.add(input.find(&c.node, &schema), i);
        }
    }
}

/// A function is created inside its schema.
fn schema_before_its_functions(input: &RuleInput<'_>, edges: &mut Edges) {
    for (i, c) in input.creations() {
        if let ObjectAddress::Function { function } = &c.address {
            let schema = ObjectAddress::Schema {
                name: function.schema.clone(),
            };
            edges.add(input.find(&c.node, &schema), i);
        }
    }
}

/// A type is created inside its schema.
fn schema_before_its_types(input: &RuleInput<'_>, edges: &mut Edges) {
    for (i, c) in input.creations() {
        if let ObjectAddress::Type { name } = &c.address {
            let schema = ObjectAddress::Schema {
                name: name.schema.clone(),
            };
            edges.add(input.find(&c.node, &schema), i);
        }
    }
}

/// A column (in a new table or added) may be of an enum or domain type, or use a new label.
fn types_before_tables_and_columns(input: &RuleInput<'_>, edges: &mut Edges) {
    let types: Vec<(usize, &Change)> = input
        .creations()
        .filter(|(_, c)| matches!(c.address, ObjectAddress::Type { .. }))
        .collect();
    if types.is_empty() {
        return;
    }
    for (i, c) in input.creations() {
        if matches!(
            c.address,
            ObjectAddress::Table { .. } | ObjectAddress::Column { .. }
        ) {
            for (t, ty) in &types {
                if ty.node == c.node {
                    edges.add(Some(*t), i);
                }
            }
        }
    }
}

/// A domain may be over an enum type: enums first. (Which a type is, its statement says.)
fn enum_types_before_domains(input: &RuleInput<'_>, edges: &mut Edges) {
    let of_type = |prefix: &'static str| {
        input.creations().filter(move |(_, c)| {
            matches!(c.address, ObjectAddress::Type { .. })
                && c.statements
                    .first()
                    .is_some_and(|s| s.redacted().starts_with(prefix))
        })
    };
    for (d, domain) in of_type("CREATE DOMAIN") {
        for (e, _) in of_type("CREATE TYPE").filter(|(_, e)| e.node == domain.node) {
            edges.add(Some(e), d);
        }
    }
}

/// A CHECK is validated by a step of its own after the one adding it `NOT VALID` (both have
/// the constraint's address; the validation is the update).
fn check_added_before_validated(input: &RuleInput<'_>, edges: &mut Edges) {
    for (v, validate) in input.creations() {
        if validate.action != Action::Update
            || !matches!(validate.address, ObjectAddress::Constraint { .. })
        {
            continue;
        }
        for (a, add) in input.creations() {
            if add.node == validate.node
                && add.address == validate.address
                && matches!(add.action, Action::Create | Action::Replace)
            {
                edges.add(Some(a), v);
            }
        }
    }
}

/// Columns, constraints, indexes, replica identity and triggers need their table.
fn table_before_its_parts(input: &RuleInput<'_>, edges: &mut Edges) {
    for (i, c) in input.creations() {
        if matches!(c.address, ObjectAddress::Table { .. }) {
            continue;
        }
        if let Some(table) = c.address.table() {
            let table = ObjectAddress::Table {
                table: table.clone(),
            };
            edges.add(input.find(&c.node, &table), i);
        }
    }
}

/// `REPLICA IDENTITY USING INDEX` names a unique constraint's index, which must exist.
fn constraints_before_replica_identity(input: &RuleInput<'_>, edges: &mut Edges) {
    let mut constraints: HashMap<(&str, &QualifiedName), Vec<usize>> = HashMap::new();
    for (j, c) in input.creations() {
        if let ObjectAddress::Constraint { table, .. } = &c.address {
            constraints
                .entry((c.node.as_str(), table))
                .or_default()
                .push(j);
        }
    }
    for (i, c) in input.creations() {
        if let ObjectAddress::ReplicaIdentity { table } = &c.address {
            for j in constraints
                .get(&(c.node.as_str(), table))
                .into_iter()
                .flatten()
            {
                edges.add(Some(*j), i);
            }
        }
    }
}

/// A node's SQL files run in config order (the diff lists them so), after every other
/// creation on the node: they may use its tables and functions, and on a joining node they
/// run once its bootstrap has created the donor's objects, which a file may replace.
fn sql_files_last_in_config_order(input: &RuleInput<'_>, edges: &mut Edges) {
    let mut previous: HashMap<&str, usize> = HashMap::new();
    for (i, c) in input.creations() {
        if !matches!(c.address, ObjectAddress::SqlFile { .. }) {
            continue;
        }
        if let Some(p) = previous.insert(c.node.as_str(), i) {
            edges.add(Some(p), i);
            continue;
        }
        for (j, other) in input.creations() {
            if other.node == c.node && !matches!(other.address, ObjectAddress::SqlFile { .. }) {
                edges.add(Some(j), i);
            }
        }
    }
}

/// A node's key slot step records its slot in the register (an internal table) and bounds
/// the sequences of identity and serial columns, which exist once their table and column do.
fn tables_and_columns_before_key_slot(input: &RuleInput<'_>, edges: &mut Edges) {
    for (i, c) in input.creations() {
        if !matches!(c.address, ObjectAddress::KeySlot { .. }) {
            continue;
        }
        for (j, other) in input.creations() {
            if other.node == c.node
                && matches!(
                    other.address,
                    ObjectAddress::Table { .. } | ObjectAddress::Column { .. }
                )
            {
                edges.add(Some(j), i);
            }
        }
    }
}

/// Function bodies name the internal tables (data tables come earlier by phase).
fn internal_tables_before_functions(input: &RuleInput<'_>, edges: &mut Edges) {
    let internal_tables = input.internal_tables();
    for (i, c) in input.creations() {
        if matches!(c.address, ObjectAddress::Function { .. }) {
            for s in internal_tables.get(c.node.as_str()).into_iter().flatten() {
                edges.add(Some(*s), i);
            }
        }
    }
}

/// Per-table bodies call the shared functions; one replaced while changes arrive must never
/// run before a shared function it calls exists.
fn shared_functions_before_table_functions(input: &RuleInput<'_>, edges: &mut Edges) {
    // `Some(shared)` for a function of `_pgconverge`.
    let internal_function = |c: &Change| match &c.address {
        ObjectAddress::Function { function } if function.schema == INTERNAL_SCHEMA => {
            Some(SHARED_FUNCTIONS.contains(&function.name.as_str()))
        }
        _ => None,
    };
    let mut shared: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, c) in input.creations() {
        if internal_function(c) == Some(true) {
            shared.entry(c.node.as_str()).or_default().push(i);
        }
    }
    for (i, c) in input.creations() {
        if internal_function(c) == Some(false) {
            for s in shared.get(c.node.as_str()).into_iter().flatten() {
                edges.add(Some(*s), i);
            }
        }
    }
}

/// A foreign key needs the table it references and the key it references on that table.
fn referenced_table_and_key_before_foreign_key(input: &RuleInput<'_>, edges: &mut Edges) {
    let key_constraints = input.key_constraints();
    for (i, c) in input.creations() {
        if !matches!(c.address, ObjectAddress::Constraint { .. }) {
            continue;
        }
        let key = (c.node.clone(), c.address.clone());
        let Some(target) = input.ctx.foreign_key_targets.get(&key) else {
            continue;
        };
        edges.add(input.find(&c.node, target), i);
        if let ObjectAddress::Table { table } = target {
            let keys = key_constraints.get(&(c.node.as_str(), table));
            for j in keys.into_iter().flatten() {
                edges.add(Some(*j), i);
            }
        }
    }
}

/// CREATE TRIGGER names the function it executes.
fn function_before_trigger(input: &RuleInput<'_>, edges: &mut Edges) {
    for (i, c) in input.creations() {
        if matches!(c.address, ObjectAddress::Trigger { .. }) {
            if let Some(function) = input.ctx.trigger_functions.get(&c.address) {
                edges.add(input.find(&c.node, function), i);
            }
        }
    }
}

/// The publication publishes the change log, which must exist first.
fn change_log_before_publication(input: &RuleInput<'_>, edges: &mut Edges) {
    let internal_tables = input.internal_tables();
    for (i, c) in input.creations() {
        if matches!(c.address, ObjectAddress::Publication { .. }) {
            for s in internal_tables.get(c.node.as_str()).into_iter().flatten() {
                edges.add(Some(*s), i);
            }
        }
    }
}

/// Changes may arrive as soon as a subscription exists: what applies them must be in place.
fn apply_machinery_before_subscription(input: &RuleInput<'_>, edges: &mut Edges) {
    let machinery = input.apply_machinery();
    for (i, c) in input.creations() {
        if matches!(c.address, ObjectAddress::Subscription { .. }) {
            for s in machinery.get(c.node.as_str()).into_iter().flatten() {
                edges.add(Some(*s), i);
            }
        }
    }
}

/// A subscription never creates its slot: the publisher's step does, and comes first.
fn publisher_slot_before_subscription(input: &RuleInput<'_>, edges: &mut Edges) {
    for (i, c) in input.creations() {
        if let Some((name, publisher)) = subscription_publisher(input, c) {
            let slot = ObjectAddress::Slot { name: name.clone() };
            edges.add(input.find(publisher, &slot), i);
        }
    }
}

/// A subscription names its publisher's publication, which must exist.
fn publication_before_peer_subscriptions(input: &RuleInput<'_>, edges: &mut Edges) {
    for (i, c) in input.creations() {
        let Some((_, publisher)) = subscription_publisher(input, c) else {
            continue;
        };
        for (j, other) in input.creations() {
            if other.node == *publisher
                && matches!(other.address, ObjectAddress::Publication { .. })
            {
                edges.add(Some(j), i);
            }
        }
    }
}

/// A subscription change's name and the node it receives from.
fn subscription_publisher<'a>(
    input: &RuleInput<'a>,
    change: &'a Change,
) -> Option<(&'a String, &'a String)> {
    let ObjectAddress::Subscription { name } = &change.address else {
        return None;
    };
    let publishers = input.ctx.subscription_publishers.get(&change.node)?;
    publishers.get(name).map(|publisher| (name, publisher))
}

/// Nothing is dropped while something on its node may still need it.
fn drops_after_everything_else(input: &RuleInput<'_>, edges: &mut Edges) {
    for (i, c) in input.drops() {
        for (j, other) in input.changes.iter().enumerate() {
            if other.node == c.node && !other.phase.is_drop() {
                edges.add(Some(j), i);
            }
        }
    }
}

/// A type cannot be dropped while a column of a table being dropped still uses it.
fn tables_and_columns_dropped_before_types(input: &RuleInput<'_>, edges: &mut Edges) {
    for (t, ty) in input.drops() {
        if !matches!(ty.address, ObjectAddress::Type { .. }) {
            continue;
        }
        for (d, other) in input.drops() {
            if other.node == ty.node
                && matches!(
                    other.address,
                    ObjectAddress::Table { .. } | ObjectAddress::Column { .. }
                )
            {
                edges.add(Some(d), t);
            }
        }
    }
}

/// A function cannot be dropped while a trigger still executes it.
fn triggers_dropped_before_their_function(input: &RuleInput<'_>, edges: &mut Edges) {
    for (i, c) in input.drops() {
        let ObjectAddress::Function { function } = &c.address else {
            continue;
        };
        for (trigger, f) in input.ctx.trigger_functions {
            if matches!(f, ObjectAddress::Function { function: g } if g == function) {
                edges.add(input.find(&c.node, trigger), i);
            }
        }
    }
}

/// Peers stop subscribing before the publication they read from goes.
fn subscriptions_dropped_before_publication(input: &RuleInput<'_>, edges: &mut Edges) {
    for (i, c) in input.drops() {
        if !matches!(c.address, ObjectAddress::Publication { .. }) {
            continue;
        }
        for (subscriber, subs) in input.ctx.subscription_publishers {
            for (sub, publisher) in subs {
                if *publisher == c.node {
                    let subscription = ObjectAddress::Subscription { name: sub.clone() };
                    edges.add(input.find(subscriber, &subscription), i);
                }
            }
        }
    }
}

/// Bootstrap changes with their spec.
fn bootstraps<'a>(
    input: &RuleInput<'a>,
) -> impl Iterator<Item = (usize, &'a Change, &'a BootstrapSpec)> + 'a {
    input
        .changes
        .iter()
        .enumerate()
        .filter_map(|(i, c)| match &c.lifecycle {
            Some(LifecycleStep::Bootstrap(spec)) => Some((i, c, spec)),
            _ => None,
        })
}

/// Drain changes: the nodes leaving the mesh, with the index of their drain.
fn drains<'a>(input: &RuleInput<'a>) -> impl Iterator<Item = (usize, &'a str)> + 'a {
    input
        .changes
        .iter()
        .enumerate()
        .filter_map(|(i, c)| match &c.lifecycle {
            Some(LifecycleStep::Drain(_)) => Some((i, c.node.as_str())),
            _ => None,
        })
}

/// A joining node's slots on the members exist before its copy's snapshot: what the members
/// commit after them is streamed to it, what they committed before is in the copy.
fn joiner_slots_before_bootstrap(input: &RuleInput<'_>, edges: &mut Edges) {
    for (i, _, spec) in bootstraps(input) {
        let slot = |name: &str| ObjectAddress::Slot {
            name: name.to_string(),
        };
        edges.add(input.find(&spec.donor, &slot(&spec.donor_slot)), i);
        for wait in &spec.catch_up {
            edges.add(input.find(&wait.publisher, &slot(&wait.joiner_slot)), i);
        }
    }
}

/// The donor gets every table and column the joiner will have before it is copied.
fn donor_changes_before_bootstrap(input: &RuleInput<'_>, edges: &mut Edges) {
    for (i, _, spec) in bootstraps(input) {
        for (j, other) in input.creations() {
            if other.node == spec.donor
                && !matches!(other.address, ObjectAddress::Membership { .. })
            {
                edges.add(Some(j), i);
            }
        }
    }
}

/// A joining node subscribes only once its copy has committed: its subscriptions resume from
/// slots made before the copy's snapshot, so they add only what the copy lacks.
fn bootstrap_before_joiner_subscribes(input: &RuleInput<'_>, edges: &mut Edges) {
    for (i, joining, _) in bootstraps(input) {
        for (j, other) in input.creations() {
            if other.node == joining.node
                && matches!(other.address, ObjectAddress::Subscription { .. })
            {
                edges.add(Some(i), j);
            }
        }
    }
}

/// A leaving node is drained before the remaining nodes stop subscribing to it, so nothing it
/// wrote is left behind.
fn drain_before_peers_unsubscribe(input: &RuleInput<'_>, edges: &mut Edges) {
    for (i, leaving) in drains(input) {
        for (j, c) in input.drops() {
            if matches!(&c.address, ObjectAddress::Subscription { name } if *name == subscription_name(&c.node, leaving))
            {
                edges.add(Some(i), j);
            }
        }
    }
}

/// The drain stops the leaving node's subscriptions, whose walsenders hold the slots they use
/// on the remaining nodes; those slots go after.
fn drain_before_departing_slots_drop(input: &RuleInput<'_>, edges: &mut Edges) {
    for (i, leaving) in drains(input) {
        for (j, c) in input.drops() {
            if matches!(&c.address, ObjectAddress::Slot { name } if *name == subscription_name(leaving, &c.node))
            {
                edges.add(Some(i), j);
            }
        }
    }
}

/// A leaving node is drained before any of its own objects go.
fn drain_before_departing_node_drops(input: &RuleInput<'_>, edges: &mut Edges) {
    for (i, leaving) in drains(input) {
        for (j, c) in input.drops() {
            if c.node == leaving {
                edges.add(Some(i), j);
            }
        }
    }
}

/// The remaining nodes stop subscribing to a leaving node before its publication and the
/// slots their subscriptions read go.
fn peers_unsubscribe_before_departing_publication_and_slots(
    input: &RuleInput<'_>,
    edges: &mut Edges,
) {
    for (i, c) in input.drops() {
        let ObjectAddress::Subscription { name } = &c.address else {
            continue;
        };
        for (j, d) in input.drops() {
            let reads_it = match &d.address {
                ObjectAddress::Slot { name: slot } => slot == name,
                ObjectAddress::Publication { .. } => *name == subscription_name(&c.node, &d.node),
                _ => false,
            };
            if reads_it && d.node != c.node {
                edges.add(Some(i), j);
            }
        }
    }
}

#[cfg(test)]
mod tests;
