//! Object addresses live in the model (`pgconverge_model::address`); re-exported here for the planner's modules.
pub use pgconverge_model::address::*;
