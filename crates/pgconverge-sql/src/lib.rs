//! SQL and libpq syntax shared by the whole workspace, each piece written once: quoting of
//! identifiers and literals, libpq connection strings, and string-literal decoding.
//!
//! No dependencies and no I/O; every function is total.

pub mod quote;

pub use quote::{quote_ident, quote_ident_list, quote_literal, quote_qualified};
