//! Finding and reading the configuration: the unified file, or the older nodes.json +
//! schema.json pair. Reading happens here; parsing and validation are the model's.

use std::path::{Path, PathBuf};

use pgconverge_model::config::SqlFileText;
use pgconverge_model::load::{load_legacy, load_unified, sql_file_diagnostic, ConfigSource};
use pgconverge_model::{ClusterConfig, Diagnostic};

use crate::cli::GlobalArgs;
use crate::error::CommandError;

const DEFAULT_CONFIG: &str = "pgconverge.json";
const DEFAULT_NODES: &str = "nodes.json";
const DEFAULT_SCHEMA: &str = "schema.json";

#[derive(Debug, Clone)]
pub enum ConfigLocation {
    Unified(PathBuf),
    Legacy { nodes: PathBuf, schema: PathBuf },
}

impl ConfigLocation {
    /// Directory the config lives in (the sandbox keeps its servers beside it).
    pub fn base_dir(&self) -> PathBuf {
        let file = match self {
            ConfigLocation::Unified(p) => p,
            ConfigLocation::Legacy { nodes, .. } => nodes,
        };
        match file.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }
}

/// Which files to read: explicit flags first, then `pgconverge.json`, then the older pair.
pub fn locate(global: &GlobalArgs) -> Result<ConfigLocation, CommandError> {
    if global.nodes.is_some() || global.schema.is_some() {
        if global.config.is_some() {
            return Err(CommandError::new(
                "--config cannot be combined with --nodes/--schema",
            ));
        }
        return Ok(ConfigLocation::Legacy {
            nodes: global.nodes.clone().unwrap_or_else(|| DEFAULT_NODES.into()),
            schema: global
                .schema
                .clone()
                .unwrap_or_else(|| DEFAULT_SCHEMA.into()),
        });
    }
    if let Some(config) = &global.config {
        return Ok(ConfigLocation::Unified(config.clone()));
    }
    if Path::new(DEFAULT_CONFIG).exists() {
        return Ok(ConfigLocation::Unified(DEFAULT_CONFIG.into()));
    }
    if Path::new(DEFAULT_NODES).exists() && Path::new(DEFAULT_SCHEMA).exists() {
        return Ok(ConfigLocation::Legacy {
            nodes: DEFAULT_NODES.into(),
            schema: DEFAULT_SCHEMA.into(),
        });
    }
    Err(CommandError::new("no configuration found: neither pgconverge.json nor nodes.json + schema.json in the working directory")
        .with_hint("pass --config FILE, or --nodes FILE --schema FILE, or create one with `pgconverge sandbox up --count 3`"))
}

fn read_source(path: &Path) -> Result<ConfigSource, CommandError> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| CommandError::new(format!("cannot read {}: {err}", path.display())))?;
    Ok(ConfigSource {
        path: path.display().to_string(),
        text,
    })
}

/// Reads and validates the configuration, and reads the SQL files it names (relative to
/// its directory); every problem is reported at once.
pub fn load(location: &ConfigLocation) -> Result<ClusterConfig, CommandError> {
    let result = match location {
        ConfigLocation::Unified(path) => {
            let source = read_source(path)?;
            load_unified(&source).and_then(|config| {
                with_sql_files(config, &source, &location.base_dir())
                    .map_err(pgconverge_model::Diagnostics)
            })
        }
        ConfigLocation::Legacy { nodes, schema } => {
            load_legacy(&read_source(nodes)?, &read_source(schema)?)
        }
    };
    result.map_err(|diagnostics| {
        let count = diagnostics.0.len();
        CommandError::new(format!(
            "the configuration has {count} problem{}; nothing was done",
            if count == 1 { "" } else { "s" }
        ))
        .with_details(diagnostics.0.iter().map(|d| d.to_string()).collect())
    })
}

/// `config` with the contents of its SQL files; a file that cannot be read is a problem
/// located at its entry in `sql_files`.
fn with_sql_files(
    mut config: ClusterConfig,
    source: &ConfigSource,
    base: &Path,
) -> Result<ClusterConfig, Vec<Diagnostic>> {
    let mut problems = Vec::new();
    for (index, name) in config.sql_files.iter().enumerate() {
        let path = base.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => config.sql_file_texts.push(SqlFileText {
                name: name.clone(),
                text,
            }),
            Err(err) => problems.push(sql_file_diagnostic(
                source,
                index,
                format!("cannot read SQL file {}: {err}", path.display()),
            )),
        }
    }
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(problems)
    }
}

pub fn locate_and_load(
    global: &GlobalArgs,
) -> Result<(ConfigLocation, ClusterConfig), CommandError> {
    let location = locate(global)?;
    let config = load(&location)?;
    Ok((location, config))
}
