//! Pure planning: desired state + observed catalogs → typed changes → dependency-ordered plan.
//! No I/O; the same inputs always give a byte-identical plan.

pub mod address;
pub mod change;
pub mod conflict;
pub mod dag;
pub mod desired;
pub mod diff;
pub mod drift;
pub mod gate;
pub mod generate;
pub mod hazard;
pub mod lifecycle;
pub mod plan;
pub mod preflight;
pub mod prereq;
pub mod render;
pub mod statement;
pub mod verify;
pub mod write_path;

pub use address::ObjectAddress;
pub use change::{Action, Change};
pub use hazard::{Hazard, HazardKind};
pub use plan::{make_plan, Plan, PlanInput, Summary};
pub use statement::Statement;
