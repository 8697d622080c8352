//! `pgconverge generate hba|sql`: prints or writes files the servers need that pgconverge
//! does not apply itself, from the config alone (no node is contacted).

use std::path::Path;

use pgconverge_model::ClusterConfig;
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
    }
    Ok(0)
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
