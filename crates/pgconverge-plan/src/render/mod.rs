//! Views of a plan: for people (grouped by node, Terraform's symbols), for tools (versioned
//! JSON) and for DBAs (the exact SQL per node in execution order). All pure.

pub mod human;
pub mod json;
pub mod sql;
