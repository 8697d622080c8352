//! Identifier and literal quoting, kept under its old path for the planner's modules.

pub use pgconverge_sql::{quote_ident, quote_ident_list, quote_literal, quote_qualified};
