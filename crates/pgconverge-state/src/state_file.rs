//! The state file's contents: what pgconverge created on each node and its last apply.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use pgconverge_model::address::{text_set, ObjectAddress};
use pgconverge_model::NodeConfig;
use serde::{Deserialize, Serialize};

use crate::error::{json_message, StateError};
use crate::random_id::random_id;

/// The state file format this build reads and writes.
///
/// Bump it whenever the shape of [`StateFile`] changes in a way an older build could
/// misread or would lose on rewrite (any new field included): older builds then refuse the
/// file with "upgrade pgconverge" instead of silently dropping what they do not know.
/// 2: each node records how to reach it (`connection`), so a node removed from the config
/// can still be drained and cleaned up.
pub const STATE_FORMAT_VERSION: u32 = 2;

/// The pgconverge version recorded in files this build writes.
pub(crate) const PGCONVERGE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Everything pgconverge remembers between runs.
///
/// Unknown fields are rejected rather than ignored. Compatibility is carried by
/// `format_version` alone: a newer build that adds a field also bumps the version and is
/// refused with a clear message, so an unknown field at a supported version means a typo or
/// a hand edit. Ignoring it would drop it silently on the next save.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateFile {
    pub format_version: u32,
    /// Random at creation and never changed: tells apart states of different clusters.
    pub lineage: String,
    /// Incremented by every save, so a stale copy cannot overwrite a newer one.
    pub serial: u64,
    /// The pgconverge that last wrote the file.
    pub pgconverge_version: String,
    /// Fingerprint of the configuration last applied.
    #[serde(default)]
    pub config_fingerprint: Option<String>,
    /// Per node name.
    #[serde(default)]
    pub nodes: BTreeMap<String, NodeState>,
    #[serde(default)]
    pub last_apply: Option<ApplyRecord>,
}

/// What pgconverge knows about one node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeState {
    /// The objects pgconverge created on this node. Written as their text form, such as
    /// `table public.users` or `subscription pgc_n1_from_n2`, sorted.
    #[serde(default, with = "text_set")]
    pub managed: BTreeSet<ObjectAddress>,
    /// Fingerprint of the node's catalog after the last apply, to detect drift.
    #[serde(default)]
    pub catalog_fingerprint: Option<String>,
    /// Fingerprint of each managed object's live definition after the last apply, by the
    /// object's text form: a later difference is drift, a moved config is not.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub applied_definitions: BTreeMap<String, String>,
    /// The node's entry in the config last applied, without any password (see
    /// [`NodeState::remember_connection`]): how to reach it once the config no longer names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<NodeConfig>,
}

impl NodeState {
    /// Records how to reach `node`. A clear-text password is never written: a node that
    /// leaves the mesh is reached with its other password sources (environment, command,
    /// `.pgpass`).
    pub fn remember_connection(&mut self, node: &NodeConfig) {
        let mut connection = node.clone();
        connection.password = None;
        self.connection = Some(connection);
    }
}

/// The outcome of the most recent apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyRecord {
    /// RFC 3339, UTC (see [`crate::format_rfc3339_utc`]).
    pub finished_at: String,
    pub steps_applied: usize,
    #[serde(default)]
    pub plan_fingerprint: Option<String>,
    /// For example `succeeded`, `failed at step 4`, `interrupted`.
    pub outcome: String,
}

/// A state for a cluster pgconverge has never applied to: fresh lineage, serial 0.
pub(crate) fn fresh_state() -> StateFile {
    StateFile {
        format_version: STATE_FORMAT_VERSION,
        lineage: random_id(),
        serial: 0,
        pgconverge_version: PGCONVERGE_VERSION.to_owned(),
        config_fingerprint: None,
        nodes: BTreeMap::new(),
        last_apply: None,
    }
}

/// Only the fields needed to decide whether the rest of the file can be read at all.
#[derive(Deserialize)]
struct FormatProbe {
    format_version: u32,
    #[serde(default)]
    pgconverge_version: Option<serde_json::Value>,
}

/// Decodes a state file, checking its format version before its shape.
pub(crate) fn decode_state(
    path: &Path,
    backup_path: &Path,
    bytes: &[u8],
) -> Result<StateFile, StateError> {
    let corrupt = |error: serde_json::Error| StateError::Corrupt {
        path: path.to_owned(),
        line: error.line(),
        column: error.column(),
        message: json_message(&error),
        backup: backup_path.exists().then(|| backup_path.to_owned()),
    };
    let probe: FormatProbe = serde_json::from_slice(bytes).map_err(corrupt)?;
    if probe.format_version > STATE_FORMAT_VERSION {
        return Err(StateError::FormatTooNew {
            path: path.to_owned(),
            found: probe.format_version,
            supported: STATE_FORMAT_VERSION,
            written_by: match probe.pgconverge_version {
                Some(serde_json::Value::String(version)) => version,
                _ => "an unknown version".to_owned(),
            },
        });
    }
    if probe.format_version == 0 {
        return Err(StateError::FormatUnknown {
            path: path.to_owned(),
            found: probe.format_version,
        });
    }
    serde_json::from_slice(bytes).map_err(corrupt)
}

/// Encodes a state file as pretty JSON with a trailing newline, so diffs stay readable.
pub(crate) fn encode_state(path: &Path, state: &StateFile) -> Result<Vec<u8>, StateError> {
    let mut bytes = serde_json::to_vec_pretty(state).map_err(|source| StateError::Encode {
        path: path.to_owned(),
        source,
    })?;
    bytes.push(b'\n');
    Ok(bytes)
}
