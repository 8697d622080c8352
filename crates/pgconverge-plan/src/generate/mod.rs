//! Files generated from the config for the servers themselves, not applied by pgconverge:
//! `hba` writes the `pg_hba.conf` lines each node needs for its peers' subscriptions, `sql`
//! the psql scripts that make empty databases into the mesh.

pub mod hba;
pub mod sql;
