//! Pure planning: desired state + observed catalogs → typed changes → dependency-ordered plan.
//! No I/O; the same inputs always give a byte-identical plan.

pub mod conflict;
pub mod sql;
