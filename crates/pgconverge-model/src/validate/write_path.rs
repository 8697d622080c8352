//! Checks of the forwarding write path's limits: it resolves no UNIQUE constraint besides the
//! primary key, replicates no partitioned table and sets no compatibility columns, so a config
//! that asks for them on that path is refused before any node is touched.

use crate::config::WritePath;

use super::{display_table, Findings, Layout, Parts};

/// Runs the checks when the config chooses the forwarding write path.
pub(super) fn check(parts: &Parts<'_>, layout: &dyn Layout, findings: &mut Findings<'_>) {
    let forwarding = parts
        .replication
        .is_some_and(|r| r.write_path == WritePath::Forwarding);
    if !forwarding {
        return;
    }
    let file = layout.tables_file();
    for &(t, table) in &parts.tables {
        let name = display_table(table);
        for u in 0..table.unique.len() {
            findings.error(
                file,
                &layout.unique(t, u),
                format!(
                    "{name}: the forwarding write path resolves no UNIQUE constraint besides the primary key; remove it or use \"write_path\": \"change_log\""
                ),
            );
        }
        if table.partition_by.is_some() {
            findings.error(
                file,
                &layout.table_field(t, "partition_by"),
                format!("{name}: the forwarding write path does not replicate partitioned tables; use \"write_path\": \"change_log\""),
            );
        }
        for (field, set) in [
            ("updated_at", table.legacy_columns.updated_at.is_some()),
            ("origin_node", table.legacy_columns.origin_node.is_some()),
        ] {
            if set {
                findings.error(
                    file,
                    &layout.legacy_column(t, field),
                    format!("{name}: the forwarding write path sets no compatibility columns; use \"write_path\": \"change_log\""),
                );
            }
        }
    }
}
