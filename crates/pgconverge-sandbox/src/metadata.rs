//! `sandbox.json`: which nodes a sandbox holds, so a later process can stop or inspect them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::SandboxError;

pub const METADATA_FILE: &str = "sandbox.json";
const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxMetadata {
    pub format: u32,
    pub bin_dir: PathBuf,
    pub major: u32,
    pub version: String,
    pub nodes: Vec<NodeRecord>,
}

/// One node as last brought up. The password itself is never written down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub name: String,
    pub port: u16,
    pub db: String,
    pub user: String,
    pub password_set: bool,
    /// Started with TLS only (`sandbox up --tls`).
    #[serde(default)]
    pub tls: bool,
    pub data_dir: PathBuf,
    pub log_file: PathBuf,
}

impl SandboxMetadata {
    pub fn new(bin_dir: PathBuf, major: u32, version: String) -> Self {
        SandboxMetadata {
            format: FORMAT_VERSION,
            bin_dir,
            major,
            version,
            nodes: Vec::new(),
        }
    }

    pub fn node(&self, name: &str) -> Option<&NodeRecord> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Replaces the record of the same name, or appends.
    pub fn upsert(&mut self, record: NodeRecord) {
        match self.nodes.iter_mut().find(|n| n.name == record.name) {
            Some(existing) => *existing = record,
            None => self.nodes.push(record),
        }
    }

    pub fn node_names(&self) -> String {
        if self.nodes.is_empty() {
            return "no nodes".to_string();
        }
        self.nodes
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn read(root: &Path) -> Result<Option<SandboxMetadata>, SandboxError> {
        let path = root.join(METADATA_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(SandboxError::io(format!("reading {}", path.display()), e)),
        };
        let metadata: SandboxMetadata =
            serde_json::from_str(&text).map_err(|e| SandboxError::Metadata {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        if metadata.format != FORMAT_VERSION {
            return Err(SandboxError::Metadata {
                path,
                reason: format!(
                    "format {} is not the supported format {FORMAT_VERSION}",
                    metadata.format
                ),
            });
        }
        Ok(Some(metadata))
    }

    /// Writes through a temporary file and a rename, so a reader never sees half a file.
    pub fn write(&self, root: &Path) -> Result<(), SandboxError> {
        let path = root.join(METADATA_FILE);
        let tmp = root.join(format!(".{METADATA_FILE}.{}.tmp", std::process::id()));
        let mut text = serde_json::to_string_pretty(self).map_err(|e| SandboxError::Metadata {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        text.push('\n');
        std::fs::write(&tmp, text)
            .map_err(|e| SandboxError::io(format!("writing {}", tmp.display()), e))?;
        std::fs::rename(&tmp, &path)
            .map_err(|e| SandboxError::io(format!("replacing {}", path.display()), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, port: u16) -> NodeRecord {
        NodeRecord {
            name: name.to_string(),
            port,
            db: "app".to_string(),
            user: "pgc".to_string(),
            password_set: false,
            tls: false,
            data_dir: PathBuf::from(format!("/sb/{name}/data")),
            log_file: PathBuf::from(format!("/sb/{name}/postgres.log")),
        }
    }

    #[test]
    fn upsert_replaces_by_name_and_keeps_order() {
        let mut metadata = SandboxMetadata::new(PathBuf::from("/pg/bin"), 18, "18.6".into());
        metadata.upsert(record("n1", 1));
        metadata.upsert(record("n2", 2));
        metadata.upsert(record("n1", 3));
        assert_eq!(metadata.node_names(), "n1, n2");
        assert_eq!(metadata.node("n1").map(|n| n.port), Some(3));
    }

    #[test]
    fn round_trips_through_the_file() {
        let root = std::env::temp_dir().join(format!("pgconverge-metadata-{}", std::process::id()));
        std::fs::create_dir_all(&root).expect("mkdir");
        assert_eq!(SandboxMetadata::read(&root).expect("read"), None);
        let mut metadata = SandboxMetadata::new(PathBuf::from("/pg/bin"), 17, "17.10".into());
        metadata.upsert(record("n1", 15401));
        metadata.write(&root).expect("write");
        let back = SandboxMetadata::read(&root)
            .expect("read")
            .expect("present");
        std::fs::write(root.join(METADATA_FILE), "{").expect("corrupt");
        let corrupt = SandboxMetadata::read(&root);
        std::fs::remove_dir_all(&root).expect("cleanup");
        assert_eq!(back, metadata);
        assert!(matches!(corrupt, Err(SandboxError::Metadata { .. })));
    }
}
