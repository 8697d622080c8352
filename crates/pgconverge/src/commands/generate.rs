//! `pgconverge generate hba`: prints files the servers need that pgconverge does not apply
//! itself, from the config alone (no node is contacted).

use pgconverge_plan::generate::hba;

use crate::cli::{GenerateArgs, GenerateWhat, GlobalArgs};
use crate::config_source::locate_and_load;
use crate::error::CommandError;

pub fn run(global: &GlobalArgs, args: &GenerateArgs) -> Result<u8, CommandError> {
    let (_, config) = locate_and_load(global)?;
    match &args.what {
        GenerateWhat::Hba { node, auth_method } => {
            if let Some(name) = node {
                if !hba::has_node(&config, name) {
                    return Err(CommandError::new(format!(
                        "node {name} is not in the configuration"
                    )));
                }
            }
            print!("{}", hba::render(&config, node.as_deref(), auth_method));
        }
    }
    Ok(0)
}
