//! Reading configuration text into a validated [`crate::ClusterConfig`], collecting every
//! problem as a located [`crate::Diagnostic`]. Takes text, never touches the file system.
