//! Orders changes with a petgraph DAG: schemas before tables, referenced tables before foreign
//! keys, functions before triggers, the change log before the publication, a publisher's
//! publication before its peers subscribe, drops last. Each node's steps run in one
//! deterministic topological order; steps on different nodes wait only on their edges.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;

use pgconverge_model::catalog::QualifiedName;
use pgconverge_model::naming::INTERNAL_SCHEMA;

use crate::address::ObjectAddress;
use crate::change::{Action, Change};

/// Execution phase of a change on its node. Edges below never point from a later phase to an
/// earlier one, so phase order is always a valid topological order.
pub fn phase(address: &ObjectAddress, action: Action) -> u16 {
    if action == Action::Delete {
        return match address {
            ObjectAddress::Subscription { .. } => 90,
            ObjectAddress::Trigger { .. } => 91,
            ObjectAddress::Function { .. } => 92,
            ObjectAddress::Constraint { .. } | ObjectAddress::Index { .. } => 93,
            ObjectAddress::Publication { .. } => 94,
            ObjectAddress::Slot { .. } => 95,
            _ => 96,
        };
    }
    match address {
        ObjectAddress::Schema { .. } => 0,
        ObjectAddress::Table { .. } => 10,
        ObjectAddress::Column { .. } | ObjectAddress::ReplicaIdentity { .. } => 20,
        ObjectAddress::Constraint { .. } | ObjectAddress::Index { .. } => 30,
        ObjectAddress::Function { .. } => 50,
        ObjectAddress::Trigger { .. } => 60,
        ObjectAddress::Publication { .. } => 70,
        ObjectAddress::Slot { .. } => 75,
        ObjectAddress::Subscription { .. } => 80,
    }
}

/// A change placed in the plan.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OrderedChange {
    pub id: usize,
    pub change: Change,
    /// Ids of the steps that must finish first.
    pub depends_on: Vec<usize>,
}

#[derive(Debug, thiserror::Error)]
#[error("dependency cycle between planned steps: {0}")]
pub struct CycleError(pub String);

/// Facts the edges need beyond the changes themselves.
pub struct GraphContext<'a> {
    /// Node names in config order (the order steps are listed in).
    pub node_order: &'a [String],
    /// For each node, subscription name → publisher node.
    pub subscription_publishers: &'a BTreeMap<String, BTreeMap<String, String>>,
    /// Foreign key constraint address → referenced table, per node.
    pub foreign_key_targets: &'a HashMap<(String, ObjectAddress), ObjectAddress>,
    /// Trigger address → function address it calls.
    pub trigger_functions: &'a HashMap<ObjectAddress, ObjectAddress>,
}

pub fn order_changes(
    changes: Vec<Change>,
    ctx: &GraphContext<'_>,
) -> Result<Vec<OrderedChange>, CycleError> {
    let mut graph: DiGraph<usize, ()> = DiGraph::new();
    let indices: Vec<NodeIndex> = (0..changes.len()).map(|i| graph.add_node(i)).collect();
    let mut by_address: HashMap<(&str, &ObjectAddress), usize> = HashMap::new();
    for (i, c) in changes.iter().enumerate() {
        by_address.insert((c.node.as_str(), &c.address), i);
    }
    let find = |node: &str, address: &ObjectAddress| by_address.get(&(node, address)).copied();
    let mut edges: BTreeSet<(usize, usize)> = BTreeSet::new();
    // Steps of one node in each phase, for phase-wide edges.
    let mut per_node_phase: BTreeMap<(&str, u16), Vec<usize>> = BTreeMap::new();
    for (i, c) in changes.iter().enumerate() {
        per_node_phase
            .entry((c.node.as_str(), c.phase))
            .or_default()
            .push(i);
    }

    // Steps creating the internal tables (the change log among them), and those plus the
    // triggers on them and the functions those triggers call: what a subscription needs.
    let mut internal_tables: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut internal_machinery: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, c) in changes.iter().enumerate() {
        if c.action == Action::Delete {
            continue;
        }
        let node = c.node.as_str();
        match &c.address {
            ObjectAddress::Table { table } if table.schema == INTERNAL_SCHEMA => {
                internal_tables.entry(node).or_default().push(i);
                internal_machinery.entry(node).or_default().push(i);
            }
            ObjectAddress::Trigger { table, .. } if table.schema == INTERNAL_SCHEMA => {
                internal_machinery.entry(node).or_default().push(i);
                if let Some(f) = ctx
                    .trigger_functions
                    .get(&c.address)
                    .and_then(|f| find(node, f))
                {
                    internal_machinery.entry(node).or_default().push(f);
                }
            }
            _ => {}
        }
    }

    // Non-foreign-key constraint steps per (node, table): what a foreign key may reference.
    let mut key_constraints: HashMap<(&str, &QualifiedName), Vec<usize>> = HashMap::new();
    for (i, c) in changes.iter().enumerate() {
        if let ObjectAddress::Constraint { table, .. } = &c.address {
            if c.action != Action::Delete
                && !ctx
                    .foreign_key_targets
                    .contains_key(&(c.node.clone(), c.address.clone()))
            {
                key_constraints
                    .entry((c.node.as_str(), table))
                    .or_default()
                    .push(i);
            }
        }
    }

    for (i, c) in changes.iter().enumerate() {
        let node = c.node.as_str();
        let mut add = |from: Option<usize>| {
            if let Some(from) = from {
                if from != i {
                    edges.insert((from, i));
                }
            }
        };
        let table_of = |address: &ObjectAddress| match address {
            ObjectAddress::Column { table, .. }
            | ObjectAddress::Constraint { table, .. }
            | ObjectAddress::Index { table, .. }
            | ObjectAddress::ReplicaIdentity { table }
            | ObjectAddress::Trigger { table, .. }
            | ObjectAddress::Table { table } => Some(table.clone()),
            _ => None,
        };
        if c.action == Action::Delete {
            // Drops wait for every non-drop step of their node.
            for ((n, p), steps) in &per_node_phase {
                if *n == node && *p < 90 {
                    for s in steps {
                        add(Some(*s));
                    }
                }
            }
            if let ObjectAddress::Function { function } = &c.address {
                for (trigger, f) in ctx.trigger_functions {
                    if matches!(f, ObjectAddress::Function { function: g } if g == function) {
                        add(find(node, trigger));
                    }
                }
            }
            if let ObjectAddress::Publication { .. } = &c.address {
                // Peers stop subscribing before the publication goes.
                for (subscriber, subs) in ctx.subscription_publishers {
                    for (sub, publisher) in subs {
                        if publisher == node {
                            add(find(
                                subscriber,
                                &ObjectAddress::Subscription { name: sub.clone() },
                            ));
                        }
                    }
                }
            }
            continue;
        }
        if let Some(table) = table_of(&c.address) {
            add(find(
                node,
                &ObjectAddress::Schema {
                    name: table.schema.clone(),
                },
            ));
            if !matches!(c.address, ObjectAddress::Table { .. }) {
                add(find(
                    node,
                    &ObjectAddress::Table {
                        table: table.clone(),
                    },
                ));
            }
        }
        match &c.address {
            ObjectAddress::Function { function } => {
                add(find(
                    node,
                    &ObjectAddress::Schema {
                        name: function.schema.clone(),
                    },
                ));
                // Bodies name the internal tables; data tables come earlier by phase.
                for s in internal_tables.get(node).into_iter().flatten() {
                    add(Some(*s));
                }
            }
            ObjectAddress::Constraint { .. } => {
                if let Some(target) = ctx
                    .foreign_key_targets
                    .get(&(node.to_string(), c.address.clone()))
                {
                    add(find(node, target));
                    // The referenced key (a constraint of the target table) must exist.
                    if let ObjectAddress::Table { table } = target {
                        for j in key_constraints.get(&(node, table)).into_iter().flatten() {
                            add(Some(*j));
                        }
                    }
                }
            }
            ObjectAddress::Trigger { .. } => {
                if let Some(function) = ctx.trigger_functions.get(&c.address) {
                    add(find(node, function));
                }
            }
            ObjectAddress::Publication { .. } => {
                for s in internal_tables.get(node).into_iter().flatten() {
                    add(Some(*s));
                }
            }
            ObjectAddress::Subscription { name } => {
                // Local machinery that applies incoming changes must be in place…
                for s in internal_machinery.get(node).into_iter().flatten() {
                    add(Some(*s));
                }
                // …and the publisher must publish, and hold the slot.
                if let Some(publisher) = ctx
                    .subscription_publishers
                    .get(node)
                    .and_then(|m| m.get(name))
                {
                    add(find(publisher, &ObjectAddress::Slot { name: name.clone() }));
                    for (j, other) in changes.iter().enumerate() {
                        if other.node == *publisher
                            && matches!(other.address, ObjectAddress::Publication { .. })
                            && other.action != Action::Delete
                        {
                            add(Some(j));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    for (from, to) in &edges {
        graph.add_edge(indices[*from], indices[*to], ());
    }
    if petgraph::algo::is_cyclic_directed(&graph) {
        let cycle: Vec<String> = petgraph::algo::tarjan_scc(&graph)
            .into_iter()
            .find(|scc| scc.len() > 1)
            .unwrap_or_default()
            .into_iter()
            .map(|ix| {
                format!(
                    "{} on {}",
                    changes[graph[ix]].address, changes[graph[ix]].node
                )
            })
            .collect();
        return Err(CycleError(cycle.join(" → ")));
    }

    // Kahn's algorithm, always taking the smallest ready step by (node order, phase, address)
    // so the same changes give the same plan byte for byte.
    let node_rank: HashMap<&str, usize> = ctx
        .node_order
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let key = |i: usize| {
        let c = &changes[i];
        (
            node_rank
                .get(c.node.as_str())
                .copied()
                .unwrap_or(usize::MAX),
            c.node.clone(),
            c.phase,
            c.address.clone(),
            i,
        )
    };
    let mut in_degree: Vec<usize> = indices
        .iter()
        .map(|ix| graph.neighbors_directed(*ix, Direction::Incoming).count())
        .collect();
    let mut ready: BTreeSet<_> = (0..changes.len())
        .filter(|i| in_degree[*i] == 0)
        .map(key)
        .collect();
    let mut order = Vec::with_capacity(changes.len());
    while let Some(next) = ready.pop_first() {
        let i = next.4;
        order.push(i);
        for succ in graph.neighbors_directed(indices[i], Direction::Outgoing) {
            let j = graph[succ];
            in_degree[j] -= 1;
            if in_degree[j] == 0 {
                ready.insert(key(j));
            }
        }
    }
    // List steps grouped by node (config order), each node's steps in topological order.
    let mut position = vec![0usize; changes.len()];
    for (pos, i) in order.iter().enumerate() {
        position[*i] = pos;
    }
    let mut listed = order.clone();
    listed.sort_by_key(|i| {
        (
            node_rank
                .get(changes[*i].node.as_str())
                .copied()
                .unwrap_or(usize::MAX),
            position[*i],
        )
    });
    let mut id_of = vec![0usize; changes.len()];
    for (id, i) in listed.iter().enumerate() {
        id_of[*i] = id;
    }
    let mut slots: Vec<Option<Change>> = changes.into_iter().map(Some).collect();
    let mut result = Vec::with_capacity(listed.len());
    for (id, i) in listed.iter().enumerate() {
        let mut depends_on: Vec<usize> = graph
            .neighbors_directed(indices[*i], Direction::Incoming)
            .map(|p| id_of[graph[p]])
            .collect();
        depends_on.sort_unstable();
        depends_on.dedup();
        if let Some(change) = slots[*i].take() {
            result.push(OrderedChange {
                id,
                change,
                depends_on,
            });
        }
    }
    Ok(result)
}
