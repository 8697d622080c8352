//! The older two-file format (`nodes.json` + `schema.json`) and its conversion to
//! [`crate::ClusterConfig`].
