//! The plan: a value computed from config + live catalogs, consumed by apply. It carries the
//! fingerprints that make a saved plan refuse to run against a cluster that moved on.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use pgconverge_model::catalog::{
    ColumnCatalog, ConstraintCatalog, IndexCatalog, NodeCatalog, OutsideCatalog,
    PublicationCatalog, QualifiedName, SubscriptionCatalog, TriggerCatalog, TypeCatalog,
};
use pgconverge_model::config::ClusterConfig;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::drift::is_drift;
use crate::gate::settle_gate;

use crate::address::ObjectAddress;
use crate::change::Action;
use crate::dag::{order_changes, CycleError, GraphContext, OrderedChange};
use crate::desired::{desired_cluster, DesiredNode};
use crate::diff::key_sequences::{
    assign_key_slots, has_key_generators, key_warnings, slot_blockers,
};
use crate::diff::{diff_node, NodeDiffInput};
use crate::lifecycle::{plan_lifecycle, DepartingNode, Departure, LifecycleInput};
use crate::prereq::{check_node, Blocker};

/// Version of the plan file and of the JSON view; bumped on incompatible changes.
/// 2: hazards are `{ kind, message }` objects and a change's phase is named.
pub const PLAN_FORMAT_VERSION: u32 = 2;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub format_version: u32,
    pub pgconverge_version: String,
    /// sha256 of the canonical JSON of the config the plan was made from.
    pub config_fingerprint: String,
    /// sha256 of each node's structural catalog snapshot at planning time.
    pub node_fingerprints: BTreeMap<String, String>,
    pub nodes: Vec<PlannedNode>,
    /// Unmet prerequisites; a plan with blockers cannot be applied.
    pub blockers: Vec<Blocker>,
    /// What does not stop the plan but needs attention soon (a key block nearly used up).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    pub steps: Vec<OrderedChange>,
    /// Every object pgconverge will manage on each node once the plan is applied (the state
    /// file's `managed` set). Written as text, as the state file writes it.
    #[serde(with = "pgconverge_model::address::text_sets_by_node")]
    pub managed_after: BTreeMap<String, BTreeSet<ObjectAddress>>,
    /// Nodes leaving the mesh (in the state, no longer in the config), reachable or not.
    #[serde(default)]
    pub departures: Vec<Departure>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedNode {
    pub name: String,
    /// `host:port` pgconverge connects to.
    pub address: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub destroy: usize,
}

pub struct PlanInput<'a> {
    pub config: &'a ClusterConfig,
    /// Live catalog of every configured node.
    pub observed: &'a BTreeMap<String, NodeCatalog>,
    /// Objects pgconverge created earlier, per node (from the state file).
    pub managed: &'a BTreeMap<String, BTreeSet<ObjectAddress>>,
    /// Fingerprints of the managed objects' definitions recorded after the last apply, per
    /// node (see `drift`); empty when the state predates them.
    pub applied: &'a BTreeMap<String, BTreeMap<ObjectAddress, String>>,
    /// Nodes the state knows that the config no longer names, by name.
    pub departing: &'a BTreeMap<String, DepartingNode>,
    /// The donor every joining node copies from, when chosen on the command line.
    pub donor: Option<&'a str>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("node {0} has no introspected catalog")]
    MissingCatalog(String),
    #[error(transparent)]
    Cycle(#[from] CycleError),
}

impl Plan {
    pub fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for step in &self.steps {
            match step.change.action {
                Action::Create => s.add += 1,
                Action::Update => s.change += 1,
                Action::Delete => s.destroy += 1,
                Action::Replace => {
                    s.add += 1;
                    s.destroy += 1;
                }
            }
        }
        s
    }

    pub fn has_changes(&self) -> bool {
        !self.steps.is_empty()
    }
}

pub fn make_plan(input: &PlanInput<'_>) -> Result<Plan, PlanError> {
    make_plan_for(input, &desired_cluster(input.config))
}

/// [`make_plan`] with the desired state already derived from `input.config` (callers that
/// also need it before introspecting, e.g. for [`expected_function_fingerprints`], build it once).
pub fn make_plan_for(input: &PlanInput<'_>, desired: &[DesiredNode]) -> Result<Plan, PlanError> {
    let empty = BTreeSet::new();
    let no_addresses = BTreeSet::new();
    let mesh_size = input.config.nodes.len();
    let mut blockers = Vec::new();
    let mut changes = Vec::new();
    let mut slots_by_publisher: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for node in desired {
        for sub in &node.subscriptions {
            slots_by_publisher
                .entry(sub.publisher.clone())
                .or_default()
                .insert(sub.name.clone());
        }
    }
    let key_slots = assign_key_slots(input.config, input.observed);
    let keyed = desired.iter().any(|n| has_key_generators(&n.tables));
    if keyed {
        blockers.extend(key_slots.blockers.iter().cloned());
        blockers.extend(slot_blockers(desired, &key_slots));
    }
    for node in desired {
        let observed = input
            .observed
            .get(&node.name)
            .ok_or_else(|| PlanError::MissingCatalog(node.name.clone()))?;
        blockers.extend(check_node(&node.name, observed, mesh_size));
        blockers.extend(crate::prereq::check_certificate_subscriptions(
            node, observed,
        ));
        blockers.extend(crate::diff::partitions::blockers(node, observed));
        blockers.extend(crate::diff::generated::blockers(node, observed));
        blockers.extend(crate::diff::types::blockers(node, observed));
        let managed = input.managed.get(&node.name).unwrap_or(&no_addresses);
        let mut node_changes = diff_node(&NodeDiffInput {
            desired: node,
            observed,
            cluster: input.observed,
            managed,
            desired_slots_here: slots_by_publisher.get(&node.name).unwrap_or(&empty),
            key_slots: &key_slots,
        });
        let applied = input.applied.get(&node.name);
        for change in &mut node_changes {
            change.drift |= change.action != Action::Delete
                && !change.applied_as_is
                && managed.contains(&change.address)
                && is_drift(
                    observed,
                    &change.address,
                    applied.and_then(|a| a.get(&change.address)),
                );
        }
        settle_gate(&mut node_changes, observed);
        changes.extend(node_changes);
    }

    let lifecycle = plan_lifecycle(&LifecycleInput {
        config: input.config,
        desired,
        observed: input.observed,
        departing: input.departing,
        managed: input.managed,
        donor: input.donor,
    });
    changes.extend(lifecycle.changes);
    blockers.extend(lifecycle.blockers);
    blockers.extend(crate::write_path::blockers(
        input.config,
        input.observed,
        &changes,
    ));

    let node_order: Vec<String> = input.config.nodes.iter().map(|n| n.name.clone()).collect();
    let subscription_publishers: BTreeMap<String, BTreeMap<String, String>> = desired
        .iter()
        .map(|n| {
            let subs = n
                .subscriptions
                .iter()
                .map(|s| (s.name.clone(), s.publisher.clone()))
                .collect();
            (n.name.clone(), subs)
        })
        .collect();
    let mut foreign_key_targets = HashMap::new();
    let mut trigger_functions = HashMap::new();
    for node in desired {
        for table in &node.tables {
            for fk in &table.foreign_keys {
                foreign_key_targets.insert(
                    (
                        node.name.clone(),
                        ObjectAddress::Constraint {
                            table: table.name.clone(),
                            name: fk.name.clone(),
                        },
                    ),
                    ObjectAddress::Table {
                        table: fk.ref_table.clone(),
                    },
                );
            }
        }
        for t in &node.triggers {
            trigger_functions.insert(
                ObjectAddress::Trigger {
                    table: t.table.clone(),
                    name: t.name.clone(),
                },
                ObjectAddress::Function {
                    function: t.function.clone(),
                },
            );
        }
    }
    let steps = order_changes(
        changes,
        &GraphContext {
            node_order: &node_order,
            subscription_publishers: &subscription_publishers,
            foreign_key_targets: &foreign_key_targets,
            trigger_functions: &trigger_functions,
        },
    )?;

    Ok(Plan {
        format_version: PLAN_FORMAT_VERSION,
        pgconverge_version: env!("CARGO_PKG_VERSION").to_string(),
        config_fingerprint: config_fingerprint(input.config),
        node_fingerprints: input
            .observed
            .iter()
            .map(|(name, catalog)| (name.clone(), catalog_fingerprint(catalog)))
            .collect(),
        nodes: input
            .config
            .nodes
            .iter()
            .map(|n| PlannedNode {
                name: n.name.clone(),
                address: format!("{}:{}", n.host, n.port()),
            })
            .collect(),
        blockers,
        warnings: if keyed {
            key_warnings(desired, input.observed, &key_slots)
        } else {
            Vec::new()
        },
        steps,
        managed_after: desired
            .iter()
            .map(|n| {
                (
                    n.name.clone(),
                    managed_addresses(n, slots_by_publisher.get(&n.name).unwrap_or(&empty)),
                )
            })
            .collect(),
        departures: lifecycle.departures,
    })
}

/// The fingerprint every desired function should carry, by name (the first node's; only
/// `node_name()` differs between nodes, and its body is read whatever its comment says).
/// Introspection does not read the bodies of functions that carry theirs.
pub fn expected_function_fingerprints(desired: &[DesiredNode]) -> BTreeMap<QualifiedName, String> {
    desired
        .first()
        .map(|node| {
            node.functions
                .iter()
                .map(|f| (f.name.clone(), f.fingerprint.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// Addresses of everything pgconverge owns on a node once it matches `desired`.
fn managed_addresses(node: &DesiredNode, slots_here: &BTreeSet<String>) -> BTreeSet<ObjectAddress> {
    let mut out = BTreeSet::new();
    let mut add = |a: ObjectAddress| {
        out.insert(a);
    };
    add(ObjectAddress::Membership {
        node: node.name.clone(),
    });
    if has_key_generators(&node.tables) {
        add(ObjectAddress::KeySlot {
            node: node.name.clone(),
        });
    }
    for t in &node.internal_tables {
        add(ObjectAddress::Table {
            table: t.name.clone(),
        });
    }
    for t in &node.tables {
        add(ObjectAddress::Table {
            table: t.name.clone(),
        });
        add(ObjectAddress::Constraint {
            table: t.name.clone(),
            name: t.primary_key.name.clone(),
        });
        for c in t.uniques.iter() {
            add(ObjectAddress::Constraint {
                table: t.name.clone(),
                name: c.name.clone(),
            });
        }
        for fk in &t.foreign_keys {
            add(ObjectAddress::Constraint {
                table: t.name.clone(),
                name: fk.name.clone(),
            });
        }
        for ix in &t.indexes {
            add(ObjectAddress::Index {
                table: t.name.clone(),
                name: ix.name.clone(),
            });
        }
        for p in t.partitioning.iter().flat_map(|p| &p.partitions) {
            add(ObjectAddress::Partition {
                table: t.name.clone(),
                name: p.name.clone(),
            });
        }
        for check in &t.checks {
            add(ObjectAddress::Constraint {
                table: t.name.clone(),
                name: check.name.clone(),
            });
        }
    }
    for ty in &node.types {
        add(ObjectAddress::Type {
            name: ty.name.clone(),
        });
    }
    for f in &node.functions {
        add(ObjectAddress::Function {
            function: f.name.clone(),
        });
    }
    for t in &node.triggers {
        add(ObjectAddress::Trigger {
            table: t.table.clone(),
            name: t.name.clone(),
        });
    }
    add(ObjectAddress::Publication {
        name: node.publication.name.clone(),
    });
    for s in &node.subscriptions {
        add(ObjectAddress::Subscription {
            name: s.name.clone(),
        });
    }
    for slot in slots_here {
        add(ObjectAddress::Slot { name: slot.clone() });
    }
    out
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// sha256 of a value's JSON, streamed into the hasher (catalogs of large schemas are tens of
/// megabytes as JSON).
pub(crate) fn json_sha256<T: Serialize>(value: &T) -> String {
    struct HashWriter(Sha256);
    impl std::io::Write for HashWriter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.update(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut writer = HashWriter(Sha256::new());
    // Serialising these types cannot fail: every map key is a string.
    let _ = serde_json::to_writer(&mut writer, value);
    hex(&writer.0.finalize())
}

pub fn config_fingerprint(config: &ClusterConfig) -> String {
    if config.sql_file_texts.is_empty() {
        return json_sha256(config);
    }
    // A plan runs the files' contents as they were: a file edited since makes it stale.
    let files: Vec<(&str, String)> = config
        .sql_file_texts
        .iter()
        .map(|f| {
            (
                f.name.as_str(),
                crate::conflict::naming::sha256_hex(&f.text),
            )
        })
        .collect();
    json_sha256(&(config, files))
}

/// Fingerprint of what a plan depends on: structure, not activity (slot positions, activity
/// flags and row estimates change by themselves and do not make a plan stale). Function
/// definitions count through their body hash, or the fingerprint that vouches for a body
/// that was not read (a function replaced since loses it and has its body read).
pub fn catalog_fingerprint(catalog: &NodeCatalog) -> String {
    type TableStructure<'a> = (
        &'a QualifiedName,
        &'a [ColumnCatalog],
        &'a [ConstraintCatalog],
        &'a [IndexCatalog],
        &'a [String],
        &'a str,
        &'a [TriggerCatalog],
        Vec<(&'a str, &'a QualifiedName, i64, i64)>,
    );
    #[derive(Serialize)]
    struct Structural<'a> {
        server_version_num: u32,
        settings: &'a BTreeMap<String, String>,
        database_settings: &'a BTreeMap<String, String>,
        role: &'a pgconverge_model::catalog::RoleInfo,
        schemas: &'a [String],
        tables: Vec<TableStructure<'a>>,
        functions: Vec<(&'a QualifiedName, &'a str, &'a str, &'a str)>,
        publications: &'a BTreeMap<String, PublicationCatalog>,
        subscriptions: &'a BTreeMap<String, SubscriptionCatalog>,
        slots: Vec<(&'a String, &'a Option<String>, &'a str, &'a Option<String>)>,
        /// Whether a join is still to happen depends on it.
        #[serde(skip_serializing_if = "Option::is_none")]
        membership: Option<&'a str>,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        key_slots: &'a BTreeMap<String, i64>,
        /// Partitioned tables' keys and partitions (apart, so other tables' structure
        /// fingerprints as it always has).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        partitioning: Vec<PartitioningStructure<'a>>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        types: Vec<(&'a QualifiedName, &'a TypeCatalog)>,
        /// A bootstrap carries the donor's definitions as they were planned.
        #[serde(skip_serializing_if = "OutsideCatalog::is_empty")]
        outside: &'a OutsideCatalog,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        sql_files: &'a BTreeMap<String, String>,
    }
    type PartitioningStructure<'a> = (
        &'a QualifiedName,
        &'a Option<String>,
        &'a [pgconverge_model::catalog::PartitionCatalog],
    );
    json_sha256(&Structural {
        server_version_num: catalog.server_version_num,
        settings: &catalog.settings,
        database_settings: &catalog.database_settings,
        role: &catalog.role,
        schemas: &catalog.schemas,
        tables: catalog
            .tables
            .iter()
            .map(|(name, t)| {
                (
                    name,
                    t.columns.as_slice(),
                    t.constraints.as_slice(),
                    t.indexes.as_slice(),
                    t.invalid_indexes.as_slice(),
                    t.replica_identity.as_str(),
                    t.triggers.as_slice(),
                    // A sequence's bounds, not its position (which moves by itself).
                    t.key_sequences
                        .iter()
                        .map(|k| (k.column.as_str(), &k.sequence, k.min_value, k.max_value))
                        .collect(),
                )
            })
            .collect(),
        functions: catalog
            .functions
            .iter()
            .map(|(name, f)| {
                (
                    name,
                    f.body_sha256.as_str(),
                    f.fingerprint.as_str(),
                    f.identity_arguments.as_str(),
                )
            })
            .collect(),
        publications: &catalog.publications,
        subscriptions: &catalog.subscriptions,
        slots: catalog
            .slots
            .iter()
            .map(|(name, s)| (name, &s.plugin, s.slot_type.as_str(), &s.database))
            .collect(),
        membership: catalog.membership.as_ref().map(|m| m.node.as_str()),
        types: catalog.types.iter().collect(),
        key_slots: &catalog.key_slots,
        partitioning: catalog
            .tables
            .iter()
            .filter(|(_, t)| t.partition_key.is_some() || !t.partitions.is_empty())
            .map(|(name, t)| (name, &t.partition_key, t.partitions.as_slice()))
            .collect(),
        outside: &catalog.outside,
        sql_files: &catalog.sql_files,
    })
}
