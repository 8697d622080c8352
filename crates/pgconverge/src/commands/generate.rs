//! `pgconverge generate hba|sql|compose`: prints or writes files the servers need that
//! pgconverge does not apply itself, from the config alone (no node is contacted).

use std::path::Path;

use pgconverge_sandbox::compose::{self, ComposeNode};

use pgconverge_model::{ClusterConfig, NodeConfig};
use pgconverge_plan::generate::hba;
use pgconverge_plan::generate::sql::{self as sql_scripts, NodeScript, ScriptPart};

use crate::cli::{GenerateArgs, GenerateWhat, GlobalArgs};
use crate::config_source::locate_and_load;
use crate::error::{context, CommandError};

pub fn run(global: &GlobalArgs, args: &GenerateArgs) -> Result<u8, CommandError> {
    let (_, config) = locate_and_load(global)?;
    match &args.what {
        GenerateWhat::Hba { node, auth_method } => {
            known_node(&config, node.as_deref())?;
            print!("{}", hba::render(&config, node.as_deref(), auth_method));
        }
        GenerateWhat::Sql {
            node,
            part,
            out,
            out_dir,
        } => {
            known_node(&config, node.as_deref())?;
            let part = part.as_deref().and_then(ScriptPart::from_name);
            let scripts: Vec<NodeScript> =
                sql_scripts::mesh_scripts(&config, &pgconverge_engine::password_env_vars)
                    .map_err(context("cannot generate the SQL"))?
                    .into_iter()
                    .filter(|s| node.as_ref().is_none_or(|n| *n == s.node))
                    .filter(|s| part.is_none_or(|p| p == s.part))
                    .collect();
            write_scripts(&scripts, out.as_deref(), out_dir.as_deref())?;
        }
        GenerateWhat::Compose {
            out,
            env_file,
            pg_major,
        } => write_compose(&config, out.as_deref(), env_file.as_deref(), *pg_major)?,
    }
    Ok(0)
}

/// The compose file for the nodes a compose project can run (not external, reached on
/// loopback), saying on stderr which are left out and which peers could not reach.
fn write_compose(
    config: &ClusterConfig,
    out: Option<&Path>,
    env_file: Option<&Path>,
    major: u32,
) -> Result<(), CommandError> {
    let (local, left_out): (Vec<_>, Vec<_>) = config
        .nodes
        .iter()
        .partition(|n| !n.external && super::sandbox::is_loopback(&n.host));
    if local.is_empty() {
        return Err(CommandError::new(
            "no node of the config is local (on loopback and not external); a compose file has nothing to run",
        ));
    }
    if !left_out.is_empty() {
        let names: Vec<&str> = left_out.iter().map(|n| n.name.as_str()).collect();
        eprintln!(
            "note: left out (external, or not on this host): {}",
            names.join(", ")
        );
    }
    let nodes: Vec<ComposeNode> = local.iter().map(|n| compose_node(n)).collect();
    let env_name = env_file.map_or_else(|| ".env".to_string(), |p| p.display().to_string());
    let text = compose::compose_file(&nodes, config.nodes.len(), major, &env_name)
        .map_err(context("cannot write the compose file as YAML"))?;
    if let Some(path) = env_file {
        if path.exists() {
            eprintln!("note: {} exists; left as it is", path.display());
        } else {
            std::fs::write(path, compose::example_env_file(&nodes))
                .map_err(context(format!("cannot write {}", path.display())))?;
            eprintln!("wrote {}: fill in every password", path.display());
        }
    }
    match out {
        Some(path) => {
            std::fs::write(path, text).map_err(context(format!("cannot write {}", path.display())))
        }
        None => print_all(&text),
    }
}

/// A node as a service: published on its `port`, listening on its `peer_port`, reachable by
/// its name and its `peer_host` when that is a name.
fn compose_node(node: &NodeConfig) -> ComposeNode {
    let peer_host = node.peer_host();
    let is_address = peer_host.parse::<std::net::IpAddr>().is_ok() || peer_host == "localhost";
    if is_address {
        eprintln!(
            "warning: {name}'s peers connect to {peer_host}:{port}, which inside the compose \
             network is each peer's own container; set \"peer_host\": \"{name}\" in the config \
             so their subscriptions reach this service",
            name = node.name,
            port = node.peer_port()
        );
    }
    let aliases = if is_address || peer_host == node.name {
        Vec::new()
    } else {
        vec![peer_host.to_string()]
    };
    ComposeNode {
        name: node.name.clone(),
        host_port: node.port(),
        container_port: node.peer_port(),
        aliases,
        db: node.db.clone(),
        user: node.user.clone(),
        password_variable: pgconverge_engine::password_env_vars(node)
            .into_iter()
            .next()
            .unwrap_or_default(),
    }
}

/// Refuses a `--node` the config does not name.
fn known_node(config: &ClusterConfig, node: Option<&str>) -> Result<(), CommandError> {
    match node {
        Some(name) if !hba::has_node(config, name) => {
            let names: Vec<&str> = config.nodes.iter().map(|n| n.name.as_str()).collect();
            Err(
                CommandError::new(format!("node {name} is not in the configuration"))
                    .with_hint(format!("the configured nodes are: {}", names.join(", "))),
            )
        }
        _ => Ok(()),
    }
}

/// One script to FILE, each to DIR, or all to stdout headed by their file names.
fn write_scripts(
    scripts: &[NodeScript],
    out: Option<&Path>,
    out_dir: Option<&Path>,
) -> Result<(), CommandError> {
    if let Some(file) = out {
        let [script] = scripts else {
            return Err(CommandError::new(format!(
                "--out writes one script, and {} are selected",
                scripts.len()
            ))
            .with_hint("name one node with --node and one part with --part, or write them all with --out-dir DIR"));
        };
        return std::fs::write(file, &script.text)
            .map_err(context(format!("cannot write {}", file.display())));
    }
    if let Some(dir) = out_dir {
        std::fs::create_dir_all(dir)
            .map_err(context(format!("cannot create {}", dir.display())))?;
        for script in scripts {
            let path = dir.join(script.file_name());
            std::fs::write(&path, &script.text)
                .map_err(context(format!("cannot write {}", path.display())))?;
            eprintln!("wrote {}", path.display());
        }
        return Ok(());
    }
    let text = match scripts {
        [script] => script.text.clone(),
        _ => scripts
            .iter()
            .map(|s| format!("-- ===== {} =====\n{}\n", s.file_name(), s.text))
            .collect(),
    };
    print_all(&text)
}

/// Writes `text` to stdout; a reader that stops early (`| head`) is no error.
fn print_all(text: &str) -> Result<(), CommandError> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(CommandError::new(format!("cannot write to stdout: {e}")))
        }
        _ => Ok(()),
    }
}
