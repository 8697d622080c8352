//! `pgconverge import`: converts the older nodes.json + schema.json into the unified file.

use std::path::PathBuf;

use pgconverge_model::load::{load_legacy, to_unified_json, ConfigSource};

use crate::cli::{GlobalArgs, ImportArgs};
use crate::error::CommandError;

fn read(path: &PathBuf) -> Result<ConfigSource, CommandError> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| CommandError::new(format!("cannot read {}: {err}", path.display())))?;
    Ok(ConfigSource {
        path: path.display().to_string(),
        text,
    })
}

pub fn run(global: &GlobalArgs, args: &ImportArgs) -> Result<u8, CommandError> {
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
    if out.as_os_str() == "-" {
        print!("{text}");
        return Ok(0);
    }
    if out.exists() && !args.force {
        return Err(
            CommandError::new(format!("{} already exists", out.display()))
                .with_hint("pass --force to overwrite it, or --out FILE"),
        );
    }
    std::fs::write(&out, &text)
        .map_err(|err| CommandError::new(format!("cannot write {}: {err}", out.display())))?;
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
