//! One module per command: its logic and nothing else.

pub mod apply;
pub mod generate;
pub mod import;
pub mod plan;
pub mod sandbox;
pub mod state;
pub mod status;
pub mod validate;
pub mod verify;
