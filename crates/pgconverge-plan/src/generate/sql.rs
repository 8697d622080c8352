//! psql scripts that make empty databases into the mesh the config describes, without
//! pgconverge contacting any node: the plan against empty databases, its steps split per node
//! into two parts. Part 1 (`objects`: schemas, tables, conflict machinery, publication, the
//! slots peers stream from, the membership record) runs on every node before part 2
//! (`subscriptions`) runs on any: a subscription reads its publisher's publication when it is
//! created and streams from the slot part 1 made there. The statements are the plan's own;
//! only a subscription's connection string is filled in by psql from a variable, so that no
//! password is ever written into a script.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use pgconverge_model::catalog::NodeCatalog;
use pgconverge_model::{ClusterConfig, NodeConfig};
use pgconverge_sql::{quote_conninfo_value_sql, quote_literal};

use crate::dag::{OrderedChange, Phase};
use crate::plan::{make_plan, Plan, PlanError, PlanInput};
use crate::prereq::{check_node, MIN_SERVER_VERSION_NUM};
use crate::render::sql::render_step_with;
use crate::statement::{ConninfoSpec, Segment, Statement};

/// Which half of a node's setup a script holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ScriptPart {
    /// Everything up to and including the publication, slots and membership record.
    Objects,
    /// The subscriptions to every peer; needs part 1 done on every node.
    Subscriptions,
}

/// The words `--part` accepts, in order.
pub const PART_NAMES: &[&str] = &["objects", "subscriptions"];

impl ScriptPart {
    pub fn name(self) -> &'static str {
        match self {
            ScriptPart::Objects => PART_NAMES[0],
            ScriptPart::Subscriptions => PART_NAMES[1],
        }
    }

    pub fn from_name(name: &str) -> Option<ScriptPart> {
        [ScriptPart::Objects, ScriptPart::Subscriptions]
            .into_iter()
            .find(|p| p.name() == name)
    }

    fn number(self) -> usize {
        match self {
            ScriptPart::Objects => 1,
            ScriptPart::Subscriptions => 2,
        }
    }

    fn of(step: &OrderedChange) -> ScriptPart {
        if step.change.phase < Phase::Subscriptions {
            ScriptPart::Objects
        } else {
            ScriptPart::Subscriptions
        }
    }
}

/// One psql script: what one node runs for one part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeScript {
    pub node: String,
    pub part: ScriptPart,
    pub text: String,
}

impl NodeScript {
    /// `1-objects.n1.sql`, `2-subscriptions.n1.sql`: sorted by name, a valid running order.
    pub fn file_name(&self) -> String {
        format!(
            "{}-{}.{}.sql",
            self.part.number(),
            self.part.name(),
            self.node
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateSqlError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The plan against empty databases holds something two parts cannot order (a copy
    /// from another node, a drop): never the case for a new mesh.
    #[error("step {step} ({label} on {node}) cannot be part of a script for an empty database")]
    NotScriptable {
        step: usize,
        label: String,
        node: String,
    },
}

/// What a database looks like right after `CREATE DATABASE`: the `public` schema and nothing
/// of pgconverge's. Settings and role are unknown, which only the prerequisites read.
pub fn empty_database_catalog() -> NodeCatalog {
    NodeCatalog {
        server_version_num: MIN_SERVER_VERSION_NUM,
        server_version: "16".into(),
        schemas: vec!["public".into()],
        ..NodeCatalog::default()
    }
}

/// The plan that makes every configured node, from an empty database, a member of the mesh.
pub fn plan_from_empty(config: &ClusterConfig) -> Result<Plan, PlanError> {
    let observed: BTreeMap<String, NodeCatalog> = config
        .nodes
        .iter()
        .map(|n| (n.name.clone(), empty_database_catalog()))
        .collect();
    make_plan(&PlanInput {
        config,
        observed: &observed,
        managed: &BTreeMap::new(),
        applied: &BTreeMap::new(),
        departing: &BTreeMap::new(),
        donor: None,
    })
}

/// Both scripts of every node, all parts 1 (in config order) before all parts 2.
/// `password_env_vars` names the environment variables a node's password may be in, first
/// set wins (psql reads them when it runs the script, pgconverge never does).
pub fn mesh_scripts(
    config: &ClusterConfig,
    password_env_vars: &dyn Fn(&NodeConfig) -> Vec<String>,
) -> Result<Vec<NodeScript>, GenerateSqlError> {
    let plan = plan_from_empty(config)?;
    check_scriptable(&plan)?;
    let mut scripts = Vec::new();
    for part in [ScriptPart::Objects, ScriptPart::Subscriptions] {
        for node in &config.nodes {
            let steps: Vec<&OrderedChange> = plan
                .steps
                .iter()
                .filter(|s| s.change.node == node.name && ScriptPart::of(s) == part)
                .collect();
            let mut text = header(config, &plan, node, part);
            if part == ScriptPart::Subscriptions {
                text.push_str(&password_preamble(config, &steps, password_env_vars));
            }
            for step in &steps {
                render_step_with(&mut text, step, &|st: &Statement| psql_statement(st));
            }
            if steps.is_empty() {
                text.push_str("\n-- Nothing to do: the mesh has no other node.\n");
            }
            scripts.push(NodeScript {
                node: node.name.clone(),
                part,
                text,
            });
        }
    }
    Ok(scripts)
}

/// Part 1 steps wait only for steps of their own node (so the nodes' parts 1 run in any
/// order) and no step copies from or waits for another node.
fn check_scriptable(plan: &Plan) -> Result<(), GenerateSqlError> {
    for step in &plan.steps {
        let c = &step.change;
        let crosses_in_part_1 = ScriptPart::of(step) == ScriptPart::Objects
            && step
                .depends_on
                .iter()
                .filter_map(|d| plan.steps.get(*d))
                .any(|dep| dep.change.node != c.node);
        if c.lifecycle.is_some() || c.phase.is_drop() || crosses_in_part_1 {
            return Err(GenerateSqlError::NotScriptable {
                step: step.id + 1,
                label: c.label(),
                node: c.node.clone(),
            });
        }
    }
    Ok(())
}

/// The psql variable holding the connection string to `node`.
fn conninfo_variable(node: &str) -> String {
    format!("pgc_conninfo_{node}")
}

/// The psql variable a node's password may be given in (`psql -v pgc_password_n2=…`).
pub fn password_variable(node: &str) -> String {
    format!("pgc_password_{node}")
}

/// A statement for psql: connection strings come from the variables the preamble sets.
fn psql_statement(statement: &Statement) -> String {
    statement.render_conninfo_as(&|spec: &ConninfoSpec| match &spec.password_of {
        Some(node) => format!(":'{}'", conninfo_variable(node)),
        None => quote_literal(&spec.render(None)),
    })
}

fn header(config: &ClusterConfig, plan: &Plan, node: &NodeConfig, part: ScriptPart) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "-- pgconverge generate sql: node {}, part {} of 2 ({})",
        node.name,
        part.number(),
        part.name()
    );
    let _ = writeln!(
        out,
        "-- Run on node {}'s database {} ({}:{}), as {}, with psql 15 or newer:\n\
         --   psql -v ON_ERROR_STOP=1 -f {} \"host={} port={} dbname={} user={}\"",
        node.name,
        node.db,
        node.host,
        node.port(),
        node.user,
        NodeScript {
            node: node.name.clone(),
            part,
            text: String::new(),
        }
        .file_name(),
        node.host,
        node.port(),
        node.db,
        node.user
    );
    match part {
        ScriptPart::Objects => {
            out.push_str(
                "-- The database must be empty of pgconverge's objects. Run part 1 on every node\n\
                 -- before part 2 on any: a subscription reads its publisher's publication and\n\
                 -- streams from the slot part 1 made there.\n",
            );
            let needs = check_node(&node.name, &empty_database_catalog(), config.nodes.len());
            if !needs.is_empty() {
                out.push_str("-- The server needs:\n");
            }
            for need in needs {
                // The role is the config's user; an empty catalog does not know its name.
                let setting = if need.setting.starts_with("role") {
                    format!("role {}", node.user)
                } else {
                    need.setting
                };
                let _ = writeln!(out, "--   {setting}: {}", need.required);
            }
        }
        ScriptPart::Subscriptions => out.push_str(
            "-- Run after part 1 has run on every node. Each peer's password comes from the psql\n\
             -- variable or environment named below, never from this file.\n",
        ),
    }
    let _ = writeln!(
        out,
        "-- pgconverge {}, config sha256 {}. Step numbers are those of the whole plan.",
        plan.pgconverge_version, plan.config_fingerprint
    );
    out.push_str("\\set ON_ERROR_STOP on\n");
    out
}

/// Sets `pgc_conninfo_<peer>` for every peer the steps connect to: the connection string
/// pgconverge's apply would write, with the password psql finds (a `-v` variable, else the
/// environment) quoted on the server, or without one.
fn password_preamble(
    config: &ClusterConfig,
    steps: &[&OrderedChange],
    password_env_vars: &dyn Fn(&NodeConfig) -> Vec<String>,
) -> String {
    let specs: BTreeSet<&ConninfoSpec> = steps
        .iter()
        .flat_map(|s| &s.change.statements)
        .flat_map(|st| &st.segments)
        .filter_map(|seg| match seg {
            Segment::Conninfo(spec) => Some(spec),
            Segment::Sql(_) => None,
        })
        .collect();
    let mut out = String::new();
    for spec in specs {
        let Some(peer) = spec.password_of.as_deref() else {
            continue;
        };
        let variable = password_variable(peer);
        let env_vars = config
            .nodes
            .iter()
            .find(|n| n.name == peer)
            .map(password_env_vars)
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "\n-- Password of {peer}, first set of: psql variable {variable} (-v), environment\n\
             -- variables {}. None set: no password in the connection string (the server's\n\
             -- ~/.pgpass, trust or certificate authentication then applies).",
            env_vars.join(", ")
        );
        for env_var in &env_vars {
            let _ = writeln!(
                out,
                "\\if :{{?{variable}}}\n\\else\n\\getenv {variable} {env_var}\n\\endif"
            );
        }
        let _ = writeln!(
            out,
            "\\if :{{?{variable}}}\n\\else\n\\set {variable} ''\n\\endif"
        );
        let (before, after) = spec.around_password();
        let password = format!("nullif(:'{variable}', '')");
        let _ = writeln!(
            out,
            "SELECT {} || coalesce(' password=' || {}, '') || {} AS {} \\gset",
            quote_literal(&before),
            quote_conninfo_value_sql(&password),
            quote_literal(&format!(" {after}")),
            conninfo_variable(peer)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ClusterConfig {
        serde_json::from_value(serde_json::json!({
            "nodes": [
                {"name": "n1", "host": "10.0.0.1", "db": "app", "user": "repl"},
                {"name": "n2", "host": "10.0.0.2", "db": "app", "user": "repl",
                 "password_env": "N2_SECRET"}
            ],
            "tables": [
                {"name": "items", "columns": [{"name": "id", "type": "bigint"}],
                 "primary_key": ["id"]}
            ]
        }))
        .expect("config")
    }

    fn env_vars(node: &NodeConfig) -> Vec<String> {
        let mut vars = vec![format!("PGCONVERGE_{}_PASSWORD", node.name.to_uppercase())];
        vars.extend(node.password_env.clone());
        vars
    }

    #[test]
    fn every_plan_step_is_in_exactly_one_script_of_its_node() {
        let config = config();
        let plan = plan_from_empty(&config).expect("plan");
        let scripts = mesh_scripts(&config, &env_vars).expect("scripts");
        let order: Vec<String> = scripts.iter().map(NodeScript::file_name).collect();
        assert_eq!(
            order,
            [
                "1-objects.n1.sql",
                "1-objects.n2.sql",
                "2-subscriptions.n1.sql",
                "2-subscriptions.n2.sql"
            ]
        );
        for step in &plan.steps {
            let heading = format!("\n-- step {}: ", step.id + 1);
            let holders: Vec<&NodeScript> = scripts
                .iter()
                .filter(|s| s.text.contains(&heading))
                .collect();
            assert_eq!(holders.len(), 1, "{heading}");
            assert_eq!(holders[0].node, step.change.node);
        }
        let objects = &scripts[0].text;
        assert!(objects.contains("pg_create_logical_replication_slot('pgc_n2_from_n1'"));
        assert!(objects.contains("CREATE PUBLICATION"));
        assert!(!objects.contains("CREATE SUBSCRIPTION"));
        assert!(objects.contains("--   wal_level: logical"), "{objects}");
    }

    #[test]
    fn subscriptions_take_their_connection_from_psql_never_a_password() {
        let scripts = mesh_scripts(&config(), &env_vars).expect("scripts");
        let n1 = &scripts[2].text;
        assert!(
            n1.contains("CONNECTION :'pgc_conninfo_n2' PUBLICATION"),
            "{n1}"
        );
        assert!(n1.contains("\\getenv pgc_password_n2 PGCONVERGE_N2_PASSWORD\n"));
        assert!(n1.contains("\\getenv pgc_password_n2 N2_SECRET\n"));
        assert!(n1.contains(
            "SELECT 'host=10.0.0.2 port=5432 dbname=app user=repl' || coalesce(' password=' || "
        ));
        assert!(n1.contains(" || ' application_name=pgconverge' AS pgc_conninfo_n2 \\gset\n"));
        assert!(!n1.contains("password=*"), "{n1}");
    }
}
