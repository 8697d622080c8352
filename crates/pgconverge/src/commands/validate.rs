//! `pgconverge validate`: checks the configuration; never contacts a node.

use crate::cli::{GlobalArgs, ValidateArgs};
use crate::config_source::locate_and_load;
use crate::error::CommandError;

pub fn run(global: &GlobalArgs, _args: &ValidateArgs) -> Result<u8, CommandError> {
    let (location, config) = locate_and_load(global)?;
    let source = match &location {
        crate::config_source::ConfigLocation::Unified(p) => p.display().to_string(),
        crate::config_source::ConfigLocation::Legacy { nodes, schema } => {
            format!("{} + {}", nodes.display(), schema.display())
        }
    };
    println!(
        "{source}: valid ({} node{}, {} table{})",
        config.nodes.len(),
        if config.nodes.len() == 1 { "" } else { "s" },
        config.tables.len(),
        if config.tables.len() == 1 { "" } else { "s" }
    );
    Ok(0)
}
