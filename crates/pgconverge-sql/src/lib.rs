//! SQL and libpq syntax shared by the whole workspace, each piece written once: quoting of
//! identifiers and literals, libpq connection strings and their redaction, string-literal
//! decoding, and `pg_hba.conf` fields.
//!
//! No dependencies and no I/O; every function is total.

pub mod conninfo;
pub mod hba;
pub mod literal;
pub mod quote;
pub mod redact;

pub use conninfo::{conninfo_pairs, quote_conninfo_value, quote_conninfo_value_sql};
pub use hba::{hba_address, quote_hba_name};
pub use literal::{standard_string, standard_string_literals};
pub use quote::{quote_ident, quote_ident_list, quote_literal, quote_qualified};
pub use redact::{redact_conninfo, REDACTED};
