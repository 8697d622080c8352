//! `pgconverge import`: writes a config from a live database (`--from`), listing what the
//! config cannot describe; or converts the older nodes.json + schema.json into the unified
//! file.

use std::path::{Path, PathBuf};

use pgconverge_engine::operations::import::{node_from_conninfo, read_database_of};
use pgconverge_model::config::{ClusterConfig, NodeConfig, ReplicationConfig};
use pgconverge_model::import::{import_tables, NotImported};
use pgconverge_model::load::{load_legacy, load_unified, to_unified_json, ConfigSource};

use crate::cli::{GlobalArgs, ImportArgs};
use crate::config_source::{load, ConfigLocation};
use crate::error::CommandError;

fn read(path: &PathBuf) -> Result<ConfigSource, CommandError> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| CommandError::new(format!("cannot read {}: {err}", path.display())))?;
    Ok(ConfigSource {
        path: path.display().to_string(),
        text,
    })
}

pub async fn run(global: &GlobalArgs, args: &ImportArgs) -> Result<u8, CommandError> {
    match &args.from {
        Some(from) => import_live(global, args, from).await,
        None => convert_legacy(global, args),
    }
}

fn convert_legacy(global: &GlobalArgs, args: &ImportArgs) -> Result<u8, CommandError> {
    let nodes = global
        .nodes
        .clone()
        .unwrap_or_else(|| PathBuf::from("nodes.json"));
    let schema = global
        .schema
        .clone()
        .unwrap_or_else(|| PathBuf::from("schema.json"));
    let config = load_legacy(&read(&nodes)?, &read(&schema)?).map_err(|diagnostics| {
        CommandError::new("the older configuration has problems; nothing was written")
            .with_details(diagnostics.0.iter().map(|d| d.to_string()).collect())
    })?;
    let text = to_unified_json(&config);
    let out = args
        .out
        .clone()
        .or_else(|| global.config.clone())
        .unwrap_or_else(|| PathBuf::from("pgconverge.json"));
    if !write_output(&out, &text, args.force)? {
        return Ok(0);
    }
    println!(
        "Wrote {} ({} nodes, {} tables) from {} and {}.",
        out.display(),
        config.nodes.len(),
        config.tables.len(),
        nodes.display(),
        schema.display()
    );
    Ok(0)
}

/// Writes the config to `out` (`-`: standard output, returning false). An existing file is
/// kept unless `force`.
fn write_output(out: &Path, text: &str, force: bool) -> Result<bool, CommandError> {
    if out.as_os_str() == "-" {
        print!("{text}");
        return Ok(false);
    }
    if out.exists() && !force {
        return Err(
            CommandError::new(format!("{} already exists", out.display()))
                .with_hint("pass --force to overwrite it, or --out FILE"),
        );
    }
    std::fs::write(out, text)
        .map_err(|err| CommandError::new(format!("cannot write {}: {err}", out.display())))?;
    Ok(true)
}

/// The current config, when there is one: `--config`, else `pgconverge.json` if present.
fn current_config(global: &GlobalArgs) -> Result<Option<ClusterConfig>, CommandError> {
    let path = match &global.config {
        Some(path) => path.clone(),
        None if Path::new("pgconverge.json").exists() => PathBuf::from("pgconverge.json"),
        None => return Ok(None),
    };
    load(&ConfigLocation::Unified(path)).map(Some)
}

/// The database to read: a node of the current config, or one described by a connection
/// string of `key=value` pairs.
fn source_node(from: &str, config: Option<&ClusterConfig>) -> Result<NodeConfig, CommandError> {
    if let Some(node) = config.and_then(|c| c.nodes.iter().find(|n| n.name == from)) {
        return Ok(node.clone());
    }
    if !from.contains('=') {
        return Err(CommandError::new(format!(
            "--from {from:?} is neither a node of the configuration nor a connection string"
        ))
        .with_hint("name a node of pgconverge.json, or give `host=… port=… dbname=… user=…`"));
    }
    node_from_conninfo(from).map_err(|problem| {
        CommandError::new(format!("--from: {problem}"))
            .with_hint("give `host=… port=… dbname=… user=…`")
    })
}

async fn import_live(
    global: &GlobalArgs,
    args: &ImportArgs,
    from: &str,
) -> Result<u8, CommandError> {
    let current = current_config(global)?;
    let source = source_node(from, current.as_ref())?;
    let snapshot = read_database_of(&source).await?;
    let import = import_tables(&snapshot.catalog, &snapshot.outside);
    let config = ClusterConfig {
        schema: None,
        nodes: current
            .as_ref()
            .map(|c| c.nodes.clone())
            .unwrap_or_default(),
        types: import.types,
        tables: import.tables,
        dropped_tables: Vec::new(),
        dropped_types: Vec::new(),
        // Objects the tables cannot describe keep reaching every node through the files.
        sql_files: current
            .as_ref()
            .map(|c| c.sql_files.clone())
            .unwrap_or_default(),
        sql_file_texts: Vec::new(),
        // Nodes come back with the TLS defaults applied; keeping the block changes nothing.
        tls: current.as_ref().map(|c| c.tls.clone()).unwrap_or_default(),
        replication: current
            .map(|c| c.replication)
            .unwrap_or_else(ReplicationConfig::default),
    };
    let text = to_unified_json(&config);
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from("pgconverge.json"));
    let report = report_text(&source, &config, &import.report);
    if let Some(path) = &args.report {
        std::fs::write(path, &report)
            .map_err(|err| CommandError::new(format!("cannot write {}: {err}", path.display())))?;
    }
    let written = write_output(&out, &text, args.force)?;
    eprint!("{report}");
    if written {
        println!(
            "Wrote {} ({} nodes, {} tables) from {}.",
            out.display(),
            config.nodes.len(),
            config.tables.len(),
            describe_source(&source, from)
        );
    }
    if config.nodes.is_empty() {
        eprintln!("note: the config lists no nodes yet; add them before `pgconverge plan`");
        return Ok(0);
    }
    // What the model refuses (a foreign key between columns of different types, say) must
    // be seen now, not at the first plan.
    if let Err(diagnostics) = load_unified(&ConfigSource::new(out.display().to_string(), text)) {
        return Err(CommandError::new(
            "the imported config has problems to fix before it can be planned",
        )
        .with_details(diagnostics.0.iter().map(|d| d.to_string()).collect()));
    }
    Ok(0)
}

fn describe_source(source: &NodeConfig, from: &str) -> String {
    if source.name == from {
        format!("node {from}")
    } else {
        format!("{}:{}/{}", source.host, source.port(), source.db)
    }
}

/// What the config cannot describe, one object a line.
fn report_text(source: &NodeConfig, config: &ClusterConfig, report: &[NotImported]) -> String {
    let mut text = format!(
        "Imported {} table{} from database {} on {}:{}.\n",
        config.tables.len(),
        if config.tables.len() == 1 { "" } else { "s" },
        source.db,
        source.host,
        source.port()
    );
    if report.is_empty() {
        text.push_str("Everything in the database is in the config.\n");
        return text;
    }
    text.push_str(&format!(
        "Not in the config ({}): pgconverge does not manage these; they stay on this database\n",
        report.len()
    ));
    for entry in report {
        text.push_str(&format!("  - {entry}\n"));
    }
    text
}
