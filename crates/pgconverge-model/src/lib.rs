//! Pure model of a pgconverge cluster: the desired state read from JSON config, the live
//! catalog snapshot read from each node, and the naming rules both sides share. No I/O.
//!
//! Layering, lowest first: a module uses only the modules its line lists, all from lines
//! above it, so reading a config flows one way (a test holds each module to its line):
//! - `catalog`, `config`, `naming`, `types`: use no other module (plain data and rules)
//! - `checks`: config, types (the names of CHECK constraints, given or derived)
//! - `key_blocks`: types (node-unique key blocks: slot numbers, block bounds per integer width)
//! - `partitioning`: config, types (partition keys as PostgreSQL prints them, bounds normalised)
//! - `import`: catalog, config, key_blocks, naming, partitioning, types (a live database's tables as
//!   table configs, and the report of what the config cannot describe)
//! - `address`: catalog (typed addresses of the objects pgconverge manages, and their text)
//! - `units`: uses none (quantities as plans and progress print them)
//! - `diagnostics`: uses none (a located problem; merging a load's problems)
//! - `quick_check`: uses none (the cheap read of a unified file)
//! - `unified_json`: config
//! - `source_map`: diagnostics (the text and positions of a file)
//! - `schema_check`: diagnostics, source_map (structural checks)
//! - `entries`: diagnostics, source_map (entry-by-entry deserialising)
//! - `validate`: config, naming, types, key_blocks, partitioning, checks, diagnostics, source_map, schema_check (semantic
//!   checks; `schema_check` for its "did you mean")
//! - `legacy`: config, types, diagnostics, source_map, schema_check, entries, validate
//!   (reads the two-file format and converts it)
//! - `load`: config, diagnostics, quick_check, unified_json, source_map, schema_check,
//!   entries, validate, legacy (reads the unified format; the public entry points)

pub mod address;
pub mod catalog;
pub mod checks;
pub mod config;
pub mod diagnostics;
mod entries;
pub mod import;
pub mod key_blocks;
pub mod legacy;
pub mod load;
pub mod naming;
pub mod partitioning;
mod quick_check;
mod schema_check;
mod source_map;
pub mod types;
mod unified_json;
pub mod units;
mod validate;

pub use address::ObjectAddress;
pub use catalog::NodeCatalog;
pub use config::{ClusterConfig, ColumnConfig, NodeConfig, TableConfig};
pub use diagnostics::{Diagnostic, Diagnostics};
pub use load::{load_legacy, load_unified, to_unified_json, ConfigSource};

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// Each module's documented line above: the modules it may use.
    fn documented_layering() -> Vec<(String, BTreeSet<String>)> {
        // An entry starts with `- ` and may go on over the next doc lines.
        let mut entries: Vec<String> = Vec::new();
        for line in include_str!("lib.rs").lines() {
            let Some(line) = line.strip_prefix("//!") else {
                break;
            };
            let line = line.trim();
            match (line.strip_prefix("- "), entries.last_mut()) {
                (Some(entry), _) => entries.push(entry.to_string()),
                (None, Some(last)) if !line.is_empty() => {
                    last.push(' ');
                    last.push_str(line);
                }
                _ => {}
            }
        }
        let mut layers = Vec::new();
        for entry in entries {
            let (modules, uses) = entry.split_once(':').expect("`module`: uses");
            // What follows the list in parentheses explains it; "uses none" lists nothing.
            let uses: BTreeSet<String> = uses
                .split('(')
                .next()
                .unwrap_or_default()
                .split(',')
                .map(|u| u.trim().to_string())
                .filter(|u| !u.is_empty() && !u.contains(' '))
                .collect();
            for module in modules.split(',') {
                layers.push((module.trim().trim_matches('`').to_string(), uses.clone()));
            }
        }
        layers
    }

    /// Every `crate::<module>` a source file names.
    fn used_modules(text: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
        text.match_indices("crate::")
            .map(|(at, _)| {
                let rest = &text[at + "crate::".len()..];
                let end = rest
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(rest.len());
                rest[..end].to_string()
            })
            .filter(|name| modules.contains(name))
            .collect()
    }

    #[test]
    fn modules_use_only_the_modules_their_layer_lists() {
        let layers = documented_layering();
        // The lines themselves go one way: a module lists only modules above it.
        for (at, (module, uses)) in layers.iter().enumerate() {
            for used in uses {
                assert!(
                    layers[..at].iter().any(|(m, _)| m == used),
                    "`{module}` lists `{used}`, which is not on a line above it"
                );
            }
        }
        let modules: BTreeSet<String> = layers.iter().map(|(m, _)| m.clone()).collect();
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        for entry in std::fs::read_dir(&src).expect("src is readable").flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(module) = name.strip_suffix(".rs") else {
                continue;
            };
            if module == "lib" {
                continue;
            }
            let allowed = layers
                .iter()
                .find(|(m, _)| m == module)
                .map(|(_, uses)| uses)
                .unwrap_or_else(|| panic!("{name} has no line in lib.rs's layering"));
            let text = std::fs::read_to_string(entry.path()).expect("source is readable");
            for used in used_modules(&text, &modules) {
                assert!(
                    used == module || allowed.contains(&used),
                    "{name} uses `{used}`, which its layer in lib.rs does not list"
                );
            }
        }
    }
}
