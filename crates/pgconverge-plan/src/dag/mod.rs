//! Orders changes with a petgraph DAG. The edges come from named rules (`rules::RULES`):
//! schemas before tables, referenced tables before foreign keys, functions before triggers,
//! the change log before the publication, a publisher's publication before its peers
//! subscribe, drops last. Each node's steps run in one deterministic topological order that
//! prefers earlier phases (`Phase`); steps on different nodes wait only on their edges.

pub mod phase;
pub mod rules;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::Direction;

use crate::address::ObjectAddress;
use crate::change::Change;

pub use phase::Phase;

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

/// A graph node is the index of its change; an edge `a → b` means `a` runs first.
type ChangeGraph = DiGraph<usize, ()>;

pub fn order_changes(
    changes: Vec<Change>,
    ctx: &GraphContext<'_>,
) -> Result<Vec<OrderedChange>, CycleError> {
    let mut graph: ChangeGraph = DiGraph::new();
    let indices: Vec<NodeIndex> = (0..changes.len()).map(|i| graph.add_node(i)).collect();
    for (from, to) in rules::edges(&changes, ctx) {
        graph.add_edge(indices[from], indices[to], ());
    }
    if let Some(cycle) = find_cycle(&graph, &changes) {
        return Err(CycleError(cycle));
    }
    let node_rank: HashMap<&str, usize> = ctx
        .node_order
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let order = topological_order(&graph, &indices, &changes, &node_rank);
    Ok(number_steps(changes, &graph, &indices, &order, &node_rank))
}

/// The steps of a cycle, `a on n → b on n → …`, if the graph has one.
fn find_cycle(graph: &ChangeGraph, changes: &[Change]) -> Option<String> {
    if !petgraph::algo::is_cyclic_directed(graph) {
        return None;
    }
    let cycle: Vec<String> = petgraph::algo::tarjan_scc(graph)
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
    Some(cycle.join(" → "))
}

/// Kahn's algorithm, always taking the smallest ready step by (node order, phase, address)
/// so the same changes give the same plan byte for byte.
fn topological_order(
    graph: &ChangeGraph,
    indices: &[NodeIndex],
    changes: &[Change],
    node_rank: &HashMap<&str, usize>,
) -> Vec<usize> {
    let key = |i: usize| {
        let c = &changes[i];
        (
            rank_of(node_rank, &c.node),
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
    order
}

/// Position of a node in the config; unknown nodes last.
fn rank_of(node_rank: &HashMap<&str, usize>, node: &str) -> usize {
    node_rank.get(node).copied().unwrap_or(usize::MAX)
}

/// Lists steps grouped by node (config order), each node's steps in topological order, and
/// numbers them; dependencies are given by those numbers.
fn number_steps(
    changes: Vec<Change>,
    graph: &ChangeGraph,
    indices: &[NodeIndex],
    order: &[usize],
    node_rank: &HashMap<&str, usize>,
) -> Vec<OrderedChange> {
    let mut position = vec![0usize; changes.len()];
    for (pos, i) in order.iter().enumerate() {
        position[*i] = pos;
    }
    let mut listed = order.to_vec();
    listed.sort_by_key(|i| (rank_of(node_rank, &changes[*i].node), position[*i]));
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
    result
}
