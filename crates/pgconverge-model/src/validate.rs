//! Semantic checks of a configuration that has the right shape: names, references between
//! tables, keys, replication-derived names. Shared by both formats; a [`Layout`] says where
//! each checked item was written, so problems point into the file the user wrote.

use std::collections::{HashMap, HashSet};

use crate::config::{NodeConfig, ReplicationConfig, TableConfig, TlsConfig, TypeConfig};
use crate::diagnostics::Diagnostic;
use crate::key_blocks::{is_sequence_default, serial_integer_type, KeyWidth};
use crate::naming::{
    is_valid_slot_name, node_name_problem, publication_name, subscription_name, INTERNAL_SCHEMA,
    MAX_IDENTIFIER_BYTES, RESERVED_COLUMN_PREFIX,
};
use crate::schema_check::closest;
use crate::source_map::{quoted, Anchor, FieldPath, SourceFile};
use crate::types::normalize_type;

mod partitions;
mod table_features;
mod tls;
mod types;
mod write_path;

/// Where the parts of a configuration were written: which file, which field path.
pub(crate) trait Layout {
    /// Index (into [`Findings`]' files) of the file holding the nodes.
    fn nodes_file(&self) -> usize;
    /// Index of the file holding the tables.
    fn tables_file(&self) -> usize;
    fn nodes(&self) -> FieldPath;
    fn node(&self, n: usize) -> FieldPath;
    fn table(&self, t: usize) -> FieldPath;
    fn table_name(&self, t: usize) -> FieldPath;
    /// The table's schema field; the table itself where the format has no such field.
    fn table_schema(&self, t: usize) -> FieldPath;
    fn columns(&self, t: usize) -> FieldPath;
    /// The column's entry; the table for columns the format adds by itself.
    fn column(&self, t: usize, c: usize) -> FieldPath;
    fn column_name(&self, t: usize, c: usize) -> FieldPath;
    fn column_type(&self, t: usize, c: usize) -> FieldPath;
    fn column_default(&self, t: usize, c: usize) -> FieldPath;
    /// Another field of a column (`renamed_from`); the column where the format has none.
    fn column_field(&self, t: usize, c: usize, field: &str) -> FieldPath;
    /// Another field of a table (`dropped_columns`); the table where the format has none.
    fn table_field(&self, t: usize, field: &str) -> FieldPath;
    /// An entry of the top-level `dropped_tables`.
    fn dropped_table(&self, d: usize) -> FieldPath;
    /// An entry of the top-level `sql_files`; the file where the format has none.
    fn sql_file(&self, _f: usize) -> FieldPath {
        FieldPath::root()
    }
    fn primary_key(&self, t: usize) -> FieldPath;
    fn unique(&self, t: usize, u: usize) -> FieldPath;
    fn foreign_key(&self, t: usize, f: usize) -> FieldPath;
    fn foreign_key_target_table(&self, t: usize, f: usize) -> FieldPath;
    fn index_columns(&self, t: usize, i: usize) -> FieldPath;
    fn index_name(&self, t: usize, i: usize) -> FieldPath;
    /// Another field of an index (`method`, `where`); the index where the format has none.
    fn index_field(&self, t: usize, i: usize, field: &str) -> FieldPath;
    /// Where a `legacy_columns` entry is set.
    fn legacy_column(&self, t: usize, field: &str) -> FieldPath;
    fn replication(&self) -> FieldPath;
    /// Whether this is the older two-file format (some advice differs).
    fn is_legacy(&self) -> bool;
}

/// Diagnostics being collected for a set of files.
pub(crate) struct Findings<'f> {
    files: Vec<&'f SourceFile>,
    pub(crate) diagnostics: Vec<Diagnostic>,
}

impl<'f> Findings<'f> {
    pub(crate) fn new(files: Vec<&'f SourceFile>) -> Self {
        Findings {
            files,
            diagnostics: Vec::new(),
        }
    }

    pub(crate) fn error(&mut self, file: usize, path: &FieldPath, message: impl Into<String>) {
        if let Some(source) = self.files.get(file) {
            self.diagnostics
                .push(source.diagnostic(path, Anchor::Value, message.into()));
        }
    }
}

/// The parts of a configuration that could be read, each with its index in the file.
pub(crate) struct Parts<'a> {
    pub(crate) nodes: Vec<(usize, &'a NodeConfig)>,
    /// Whether the file lists nodes in an array, and how many entries it has (read or not).
    pub(crate) node_entries: Option<usize>,
    pub(crate) tables: Vec<(usize, &'a TableConfig)>,
    /// Names of tables whose entries could not be read: references to them are not
    /// reported as missing, the entry's own problems already are.
    pub(crate) unreadable_tables: HashSet<String>,
    pub(crate) replication: Option<&'a ReplicationConfig>,
    /// The cluster's TLS defaults; `None` for a format that has none.
    pub(crate) tls: Option<&'a TlsConfig>,
    /// Tables the config asks to drop.
    pub(crate) dropped_tables: &'a [String],
    /// Enum and domain types (the unified format's top-level `types`).
    pub(crate) types: &'a [TypeConfig],
    /// Types the config asks to drop.
    pub(crate) dropped_types: &'a [String],
    /// SQL files to run on every node.
    pub(crate) sql_files: &'a [String],
}

/// Runs every semantic check.
pub(crate) fn check(parts: &Parts<'_>, layout: &dyn Layout, findings: &mut Findings<'_>) {
    check_nodes(parts, layout, findings);
    tls::check(parts, layout, findings);
    check_tables(parts, layout, findings);
    partitions::check(parts, layout, findings);
    check_dropped_tables(parts, layout, findings);
    types::check(parts, layout, findings);
    check_sql_files(parts, layout, findings);
    write_path::check(parts, layout, findings);
    if let Some(replication) = parts.replication {
        let path = layout.replication();
        for (field, days) in [
            (
                "conflict_retention_days",
                replication.conflict_retention_days,
            ),
            (
                "tombstone_retention_days",
                replication.tombstone_retention_days,
            ),
        ] {
            if days == 0 {
                findings.error(
                    layout.tables_file(),
                    &path.key(field),
                    "must be at least 1 day",
                );
            }
        }
    }
}

/// Why `name` cannot be a PostgreSQL identifier, if it cannot.
pub(crate) fn identifier_problem(what: &str, name: &str) -> Option<String> {
    if name.is_empty() {
        Some(format!("{what} is empty"))
    } else if name.contains('\0') {
        Some(format!(
            "{what} contains a NUL character, which PostgreSQL does not allow"
        ))
    } else if name.len() > MAX_IDENTIFIER_BYTES {
        Some(format!(
            "{what} {} is {} bytes long; PostgreSQL limits names to {MAX_IDENTIFIER_BYTES} bytes and would silently shorten it",
            quoted(name),
            name.len()
        ))
    } else {
        None
    }
}

/// The family of `serial` pseudo-types, which create a sequence owned by the column.
pub(crate) fn is_serial_type(data_type: &str) -> bool {
    serial_integer_type(&normalize_type(data_type)).is_some()
}

fn check_nodes(parts: &Parts<'_>, layout: &dyn Layout, findings: &mut Findings<'_>) {
    let file = layout.nodes_file();
    if parts.node_entries == Some(0) {
        findings.error(
            file,
            &layout.nodes(),
            "the node list is empty: describe at least one PostgreSQL server",
        );
    }
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut addresses: HashMap<(String, u16), usize> = HashMap::new();
    let mut peer_addresses: HashMap<(String, u16), usize> = HashMap::new();
    // Nodes whose names are fine on their own, for the pairwise slot-name check.
    let mut named: Vec<(usize, &NodeConfig)> = Vec::new();
    for &(n, node) in &parts.nodes {
        let at = layout.node(n);
        let name_problem = identifier_problem("node name", &node.name).or_else(|| {
            node_name_problem(&node.name).map(|_| {
                format!(
                    "node name {} must start with a lowercase letter and contain only lowercase letters, digits and `_`: it becomes part of publication, subscription and replication slot names",
                    quoted(&node.name)
                )
            })
        });
        if let Some(problem) = name_problem {
            findings.error(file, &at.key("name"), problem);
        } else if let Some(&first) = names.get(node.name.as_str()) {
            findings.error(
                file,
                &at.key("name"),
                format!(
                    "node name {} is already used by {}",
                    quoted(&node.name),
                    layout.node(first)
                ),
            );
        } else {
            names.insert(&node.name, n);
            named.push((n, node));
        }
        let publication = publication_name(&node.name);
        if node_name_problem(&node.name).is_none() && !is_valid_slot_name(&publication) {
            findings.error(
                file,
                &at.key("name"),
                format!(
                    "node name is too long: its publication name {} would be {} bytes, over PostgreSQL's {MAX_IDENTIFIER_BYTES}-byte limit",
                    quoted(&publication),
                    publication.len()
                ),
            );
        }
        if node.host.trim().is_empty() {
            findings.error(file, &at.key("host"), "host is empty");
        }
        if node
            .peer_host
            .as_deref()
            .is_some_and(|h| h.trim().is_empty())
        {
            findings.error(
                file,
                &at.key("peer_host"),
                "peer_host is empty; leave the field out to use `host`",
            );
        }
        if node.port == Some(0) {
            findings.error(
                file,
                &at.key("port"),
                "0 is not a valid port: ports go from 1 to 65535 (leave the field out for the default 5432)",
            );
        }
        if node.peer_port == Some(0) {
            findings.error(
                file,
                &at.key("peer_port"),
                "0 is not a valid port: ports go from 1 to 65535 (leave the field out to use `port`)",
            );
        }
        if let Some(problem) = identifier_problem("database name", &node.db) {
            findings.error(file, &at.key("db"), problem);
        }
        if let Some(problem) = identifier_problem("user name", &node.user) {
            findings.error(file, &at.key("user"), problem);
        }
        if let Some(var) = &node.password_env {
            if var.trim().is_empty() {
                findings.error(
                    file,
                    &at.key("password_env"),
                    "password_env names an empty environment variable; give the variable's name, e.g. \"PGCONVERGE_PASSWORD\"",
                );
            } else if var.contains('=') || var.contains('\0') {
                findings.error(
                    file,
                    &at.key("password_env"),
                    format!(
                        "{} is not a valid environment variable name: it contains `=` or a NUL character",
                        quoted(var)
                    ),
                );
            }
        }
        if let Some(command) = &node.password_command {
            match command.first() {
                None => findings.error(
                    file,
                    &at.key("password_command"),
                    "password_command is empty; give the program and its arguments, e.g. [\"pass\", \"show\", \"db\"]",
                ),
                Some(program) if program.trim().is_empty() => findings.error(
                    file,
                    &at.key("password_command").index(0),
                    "the program name is empty",
                ),
                Some(_) => {}
            }
        }
        let sources = [
            node.password.is_some(),
            node.password_env.is_some(),
            node.password_command.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() > 1 {
            findings.error(
                file,
                &at,
                "set only one of `password`, `password_env` and `password_command`, so it is clear which password is used",
            );
        }
        if let Some(donor) = &node.donor {
            let known = parts.nodes.iter().any(|(_, other)| &other.name == donor);
            if donor == &node.name || !known {
                findings.error(
                    file,
                    &at.key("donor"),
                    format!(
                        "donor {} must name another node of this config: the node {} copies \
                         its rows from when it joins",
                        quoted(donor),
                        quoted(&node.name)
                    ),
                );
            }
        }
        if let Some(mode) = &node.sslmode {
            if !SSL_MODES.contains(&mode.as_str()) {
                findings.error(
                    file,
                    &at.key("sslmode"),
                    format!(
                        "unknown sslmode {}; expected one of {}",
                        quoted(mode),
                        backticked(SSL_MODES)
                    ),
                );
            }
        }

        // Addresses with an empty host or port 0 are already reported; comparing them would
        // only repeat that.
        let address_valid = !node.host.trim().is_empty()
            && node.port != Some(0)
            && node.peer_port != Some(0)
            && node
                .peer_host
                .as_deref()
                .is_none_or(|h| !h.trim().is_empty());
        let address = (node.host.to_lowercase(), node.port());
        if !address_valid {
            continue;
        }
        if let Some(&first) = addresses.get(&address) {
            findings.error(
                file,
                &at.key("host"),
                format!(
                    "{} already connects to {}:{}; every node must be a separate PostgreSQL server",
                    layout.node(first),
                    node.host,
                    node.port()
                ),
            );
        } else {
            addresses.insert(address, n);
            let peer_address = (node.peer_host().to_lowercase(), node.peer_port());
            if let Some(&first) = peer_addresses.get(&peer_address) {
                let field = if node.peer_host.is_some() {
                    "peer_host"
                } else {
                    "host"
                };
                findings.error(
                    file,
                    &at.key(field),
                    format!(
                        "peers would reach this node at {}:{}, the address they use for {}; every node needs its own address",
                        node.peer_host(),
                        node.peer_port(),
                        layout.node(first)
                    ),
                );
            } else {
                peer_addresses.insert(peer_address, n);
            }
        }
    }

    // Every ordered pair of nodes gets a subscription (and a slot of the same name). Blame
    // the longer name of each pair that does not fit, once per node.
    let mut blamed: HashMap<usize, (String, usize)> = HashMap::new();
    for (i, &(n1, a)) in named.iter().enumerate() {
        for &(n2, b) in &named[i + 1..] {
            for (subscriber, publisher) in [(a, b), (b, a)] {
                let name = subscription_name(&subscriber.name, &publisher.name);
                if !is_valid_slot_name(&name) {
                    let culprit = if b.name.len() >= a.name.len() { n2 } else { n1 };
                    blamed.entry(culprit).or_insert((name, n1.max(n2)));
                }
            }
        }
    }
    let mut blamed: Vec<_> = blamed.into_iter().collect();
    blamed.sort();
    for (n, (example, _)) in blamed {
        let budget = MAX_IDENTIFIER_BYTES - subscription_name("", "").len();
        findings.error(
            file,
            &layout.node(n).key("name"),
            format!(
                "node name is too long: subscription and replication slot names such as {} ({} bytes) would exceed PostgreSQL's {MAX_IDENTIFIER_BYTES}-byte limit; any two node names together must fit in {budget} bytes",
                quoted(&example),
                example.len()
            ),
        );
    }
}

const SSL_MODES: &[&str] = &[
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

pub(crate) fn backticked(items: &[&str]) -> String {
    items
        .iter()
        .map(|i| format!("`{i}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `schema.table` as a reference spells it; unqualified names are in `public`.
fn split_reference(reference: &str) -> (&str, &str) {
    match reference.split_once('.') {
        Some((schema, table)) => (schema, table),
        None => ("public", reference),
    }
}

pub(crate) fn display_table(table: &TableConfig) -> String {
    if table.schema == "public" {
        table.name.clone()
    } else {
        format!("{}.{}", table.schema, table.name)
    }
}

/// Reports list entries naming columns the table does not have, or naming one twice.
fn check_column_list(
    table: &TableConfig,
    columns: &[String],
    list: &FieldPath,
    file: usize,
    findings: &mut Findings<'_>,
) {
    let mut seen = HashSet::new();
    for (k, name) in columns.iter().enumerate() {
        if table.column(name).is_none() {
            let mut message = format!(
                "column {} is not defined in table {}",
                quoted(name),
                quoted(&display_table(table))
            );
            let known: Vec<String> = table.columns.iter().map(|c| c.name.clone()).collect();
            if let Some(suggestion) = closest(name, &known) {
                message.push_str(&format!("; did you mean `{suggestion}`?"));
            }
            findings.error(file, &list.index(k), message);
        } else if !seen.insert(name.as_str()) {
            findings.error(
                file,
                &list.index(k),
                format!("column {} is listed twice", quoted(name)),
            );
        }
    }
}

fn check_tables(parts: &Parts<'_>, layout: &dyn Layout, findings: &mut Findings<'_>) {
    let file = layout.tables_file();
    let mut by_name: HashMap<(&str, &str), (usize, &TableConfig)> = HashMap::new();
    for &(t, table) in &parts.tables {
        if let Some(problem) = identifier_problem("table name", &table.name) {
            findings.error(file, &layout.table_name(t), problem);
        }
        if let Some(problem) = identifier_problem("schema name", &table.schema) {
            findings.error(file, &layout.table_schema(t), problem);
        } else if table.schema == INTERNAL_SCHEMA {
            findings.error(
                file,
                &layout.table_schema(t),
                format!(
                    "schema {} is reserved for pgconverge's own objects",
                    quoted(INTERNAL_SCHEMA)
                ),
            );
        } else if table.schema.starts_with("pg_") || table.schema == "information_schema" {
            findings.error(
                file,
                &layout.table_schema(t),
                format!("schema {} is reserved by PostgreSQL", quoted(&table.schema)),
            );
        }
        match by_name.get(&(table.schema.as_str(), table.name.as_str())) {
            Some(&(first, _)) => findings.error(
                file,
                &layout.table_name(t),
                format!(
                    "table {} is already defined at {}",
                    quoted(&display_table(table)),
                    layout.table(first)
                ),
            ),
            None => {
                by_name.insert((&table.schema, &table.name), (t, table));
            }
        }
    }
    let table_names: Vec<String> = parts
        .tables
        .iter()
        .map(|(_, table)| display_table(table))
        .collect();

    let mut index_names: HashMap<(&str, &str), FieldPath> = HashMap::new();
    for &(t, table) in &parts.tables {
        check_columns(t, table, layout, findings);

        let pk = layout.primary_key(t);
        if table.primary_key.is_empty() {
            let field = if layout.is_legacy() {
                "constraints.primary"
            } else {
                "primary_key"
            };
            findings.error(
                file,
                &pk,
                format!(
                    "table {} has no primary key: replication identifies rows by it, so list its columns in `{field}`",
                    quoted(&display_table(table))
                ),
            );
        }
        check_column_list(table, &table.primary_key, &pk, file, findings);

        for (u, columns) in table.unique.iter().enumerate() {
            let at = layout.unique(t, u);
            if columns.is_empty() {
                findings.error(file, &at, "a UNIQUE constraint needs at least one column");
            }
            check_column_list(table, columns, &at, file, findings);
        }

        for (i, index) in table.indexes.iter().enumerate() {
            let at = layout.index_columns(t, i);
            if index.columns.is_empty() && index.expressions.is_empty() {
                findings.error(
                    file,
                    &at,
                    "an index needs at least one key: list `columns` or `expressions`",
                );
            }
            check_column_list(table, &index.columns, &at, file, findings);
            let include_at = layout.index_field(t, i, "include");
            check_column_list(table, &index.include, &include_at, file, findings);
            table_features::check_index(t, i, table, layout, findings);
            if let Some(name) = &index.name {
                let at = layout.index_name(t, i);
                if let Some(problem) = identifier_problem("index name", name) {
                    findings.error(file, &at, problem);
                } else if let Some(first) = index_names.get(&(table.schema.as_str(), name.as_str()))
                {
                    findings.error(
                        file,
                        &at,
                        format!(
                            "index name {} is already used at {first}; index names must be unique within a schema",
                            quoted(name)
                        ),
                    );
                } else {
                    index_names.insert((&table.schema, name), at);
                }
            }
        }

        for f in 0..table.foreign_keys.len() {
            check_foreign_key(t, table, f, parts, &by_name, &table_names, layout, findings);
        }

        check_legacy_columns(t, table, layout, findings);
    }
}

fn check_columns(t: usize, table: &TableConfig, layout: &dyn Layout, findings: &mut Findings<'_>) {
    let file = layout.tables_file();
    if table.columns.is_empty() {
        findings.error(
            file,
            &layout.columns(t),
            "a table needs at least one column",
        );
    }
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (c, column) in table.columns.iter().enumerate() {
        // Paths are built only for a problem: every column of every table passes here.
        let name_at = || layout.column_name(t, c);
        if let Some(problem) = identifier_problem("column name", &column.name) {
            findings.error(file, &name_at(), problem);
        } else if column
            .name
            .to_lowercase()
            .starts_with(RESERVED_COLUMN_PREFIX)
        {
            findings.error(
                file,
                &name_at(),
                format!(
                    "column names starting with {} are reserved for the columns pgconverge adds to replicated tables",
                    quoted(RESERVED_COLUMN_PREFIX)
                ),
            );
        } else if let Some(&first) = seen.get(column.name.as_str()) {
            findings.error(
                file,
                &name_at(),
                format!(
                    "column {} is already defined at {}",
                    quoted(&column.name),
                    layout.column(t, first)
                ),
            );
        } else {
            seen.insert(&column.name, c);
        }

        let type_at = || layout.column_type(t, c);
        if column.data_type.trim().is_empty() {
            findings.error(file, &type_at(), "column type is empty");
        }
        check_key_generator(t, c, column, layout, findings);
        table_features::check_generated_column(t, c, table, layout, findings);
        if column
            .default
            .as_deref()
            .is_some_and(|d| d.trim().is_empty())
        {
            findings.error(
                file,
                &layout.column_default(t, c),
                "default is empty; leave the field out for no default",
            );
        }
        if let Some(old) = &column.renamed_from {
            let problem = if old == &column.name {
                Some("renamed_from names the column itself".to_string())
            } else if table.column(old).is_some() {
                Some(format!(
                    "renamed_from {} names a column still configured; a renamed column keeps one name",
                    quoted(old)
                ))
            } else if table.dropped_columns.contains(old) {
                Some(format!(
                    "renamed_from {} is also in dropped_columns; rename or drop it, not both",
                    quoted(old)
                ))
            } else {
                identifier_problem("renamed_from", old)
            };
            if let Some(problem) = problem {
                findings.error(file, &layout.column_field(t, c, "renamed_from"), problem);
            }
        }
    }
    check_dropped_columns(t, table, layout, findings);
}

/// A dropped table is configured nowhere else, and names a table once.
fn check_dropped_tables(parts: &Parts<'_>, layout: &dyn Layout, findings: &mut Findings<'_>) {
    let file = layout.tables_file();
    let mut seen: Vec<(&str, &str)> = Vec::new();
    for (d, reference) in parts.dropped_tables.iter().enumerate() {
        let (schema, name) = split_reference(reference);
        let configured = parts
            .tables
            .iter()
            .any(|(_, t)| t.schema == schema && t.name == name);
        let problem = if configured {
            Some(format!(
                "{} is still in tables; remove it there to drop it",
                quoted(reference)
            ))
        } else if seen.contains(&(schema, name)) {
            Some(format!("{} is listed twice", quoted(reference)))
        } else {
            identifier_problem("table name", name)
                .or_else(|| identifier_problem("schema name", schema))
        };
        seen.push((schema, name));
        if let Some(problem) = problem {
            findings.error(file, &layout.dropped_table(d), problem);
        }
    }
}

/// A SQL file is named once, by a non-empty path; whether it can be read is the loading
/// command's to find out (the model reads no file).
fn check_sql_files(parts: &Parts<'_>, layout: &dyn Layout, findings: &mut Findings<'_>) {
    for (f, name) in parts.sql_files.iter().enumerate() {
        let problem = if name.trim().is_empty() {
            Some("a SQL file needs a path".to_string())
        } else if parts.sql_files[..f].contains(name) {
            Some(format!("{} is listed twice", quoted(name)))
        } else {
            None
        };
        if let Some(problem) = problem {
            findings.error(layout.tables_file(), &layout.sql_file(f), problem);
        }
    }
}

/// Dropped columns are configured nowhere else: not as a column, not in a key.
fn check_dropped_columns(
    t: usize,
    table: &TableConfig,
    layout: &dyn Layout,
    findings: &mut Findings<'_>,
) {
    let file = layout.tables_file();
    for (d, dropped) in table.dropped_columns.iter().enumerate() {
        let problem = if table.column(dropped).is_some() {
            Some(format!(
                "{} is still in columns; remove it there to drop it",
                quoted(dropped)
            ))
        } else if table.dropped_columns[..d].contains(dropped) {
            Some(format!("{} is listed twice", quoted(dropped)))
        } else {
            identifier_problem("dropped column", dropped)
        };
        if let Some(problem) = problem {
            findings.error(
                file,
                &layout.table_field(t, "dropped_columns").index(d),
                problem,
            );
        }
    }
}

/// An identity column must be of an integer type and have no default; a serial column has
/// its sequence's default and so takes none either. Sequences feeding other types cannot be
/// made node-unique.
fn check_key_generator(
    t: usize,
    c: usize,
    column: &crate::config::ColumnConfig,
    layout: &dyn Layout,
    findings: &mut Findings<'_>,
) {
    let file = layout.tables_file();
    let serial = is_serial_type(&column.data_type);
    let integer = KeyWidth::of_type(&column.data_type).is_some();
    let has_default = column
        .default
        .as_deref()
        .is_some_and(|d| !d.trim().is_empty());
    if column.identity.is_some() {
        let at = layout.column(t, c).key("identity");
        if serial {
            findings.error(
                file,
                &at,
                format!(
                    "{} already draws its values from a sequence; an identity column is declared with an integer type (`bigint`, `integer` or `smallint`)",
                    quoted(&column.data_type)
                ),
            );
        } else if !integer && !column.data_type.trim().is_empty() {
            findings.error(
                file,
                &at,
                format!(
                    "an identity column must be `bigint`, `integer` or `smallint`, not {}",
                    quoted(&column.data_type)
                ),
            );
        }
        if has_default {
            findings.error(
                file,
                &layout.column_default(t, c),
                "an identity column takes its values from its sequence: remove the default",
            );
        }
    } else if serial && has_default {
        findings.error(
            file,
            &layout.column_default(t, c),
            format!(
                "a {} column takes its values from its own sequence: remove the default",
                quoted(&column.data_type)
            ),
        );
    } else if let Some(default) = column.default.as_deref().filter(|d| is_sequence_default(d)) {
        if !integer && !column.data_type.trim().is_empty() {
            findings.error(
                file,
                &layout.column_default(t, c),
                format!(
                    "{} draws from a sequence, which pgconverge makes node-unique only for `bigint`, `integer` and `smallint` columns, not {}",
                    quoted(default),
                    quoted(&column.data_type)
                ),
            );
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn check_foreign_key(
    t: usize,
    table: &TableConfig,
    f: usize,
    parts: &Parts<'_>,
    by_name: &HashMap<(&str, &str), (usize, &TableConfig)>,
    table_names: &[String],
    layout: &dyn Layout,
    findings: &mut Findings<'_>,
) {
    let file = layout.tables_file();
    let Some(fk) = table.foreign_keys.get(f) else {
        return;
    };
    let at = layout.foreign_key(t, f);
    if fk.columns.is_empty() {
        findings.error(
            file,
            &at.key("columns"),
            "a foreign key needs at least one column",
        );
    }
    check_column_list(table, &fk.columns, &at.key("columns"), file, findings);

    table_features::check_foreign_key_rules(t, table, f, layout, findings);

    let target_at = layout.foreign_key_target_table(t, f);
    let reference = fk.references.table.as_str();
    let (schema, name) = split_reference(reference);
    let Some(&(_, target)) = by_name.get(&(schema, name)) else {
        if reference.is_empty() {
            findings.error(file, &target_at, "referenced table name is empty");
        } else if !parts.unreadable_tables.contains(reference)
            && !parts.unreadable_tables.contains(name)
        {
            let mut message = format!(
                "table {} is not defined in this configuration",
                quoted(reference)
            );
            // A table of that name in another schema is the likeliest intent.
            let same_name: Vec<String> = parts
                .tables
                .iter()
                .filter(|(_, t)| t.name == name)
                .map(|(_, t)| display_table(t))
                .collect();
            if let Some(suggestion) = same_name
                .first()
                .map(String::as_str)
                .or_else(|| closest(reference, table_names))
            {
                message.push_str(&format!("; did you mean `{suggestion}`?"));
            }
            findings.error(file, &target_at, message);
        }
        return;
    };

    let target_columns_at = at.key("references").key("columns");
    check_column_list(
        target,
        &fk.references.columns,
        &target_columns_at,
        file,
        findings,
    );
    if fk.columns.len() != fk.references.columns.len() {
        findings.error(
            file,
            &target_columns_at,
            format!(
                "the foreign key has {} column{} but references {}; they must pair up one to one",
                fk.columns.len(),
                if fk.columns.len() == 1 { "" } else { "s" },
                fk.references.columns.len()
            ),
        );
        return;
    }
    let all_exist = fk.columns.iter().all(|c| table.column(c).is_some())
        && fk
            .references
            .columns
            .iter()
            .all(|c| target.column(c).is_some());
    if !all_exist || fk.columns.is_empty() {
        return;
    }

    let referenced: HashSet<&str> = fk.references.columns.iter().map(String::as_str).collect();
    let is_key = |cols: &[String]| {
        cols.len() == referenced.len()
            && cols.iter().map(String::as_str).collect::<HashSet<_>>() == referenced
    };
    if !is_key(&target.primary_key) && !target.unique.iter().any(|u| is_key(u)) {
        findings.error(
            file,
            &target_columns_at,
            format!(
                "{}({}) is neither the primary key nor a UNIQUE constraint of {}; a foreign key must reference one of them",
                display_table(target),
                fk.references.columns.join(", "),
                quoted(&display_table(target))
            ),
        );
    }

    for (k, (local, remote)) in fk.columns.iter().zip(&fk.references.columns).enumerate() {
        let (Some(local_column), Some(remote_column)) =
            (table.column(local), target.column(remote))
        else {
            continue;
        };
        // A serial column holds its integer type: a `bigint` may reference a `bigserial`.
        let integer_type = |data_type: &str| {
            let normalized = normalize_type(data_type);
            serial_integer_type(&normalized)
                .map(str::to_string)
                .unwrap_or(normalized)
        };
        let local_type = integer_type(&local_column.data_type);
        let remote_type = integer_type(&remote_column.data_type);
        if local_type != remote_type && !local_type.is_empty() && !remote_type.is_empty() {
            findings.error(
                file,
                &at.key("columns").index(k),
                format!(
                    "column {} has type {} but the referenced column {} has type {}; a foreign key's columns must have the same types as the columns they reference",
                    quoted(local),
                    quoted(&local_type),
                    quoted(&format!("{}.{remote}", display_table(target))),
                    quoted(&remote_type)
                ),
            );
        }
    }
}

fn check_legacy_columns(
    t: usize,
    table: &TableConfig,
    layout: &dyn Layout,
    findings: &mut Findings<'_>,
) {
    let file = layout.tables_file();
    let entries = [
        ("updated_at", table.legacy_columns.updated_at.as_deref()),
        ("origin_node", table.legacy_columns.origin_node.as_deref()),
    ];
    for (field, name) in entries {
        let Some(name) = name else {
            continue;
        };
        let at = layout.legacy_column(t, field);
        let Some(column) = table.column(name) else {
            findings.error(
                file,
                &at,
                format!(
                    "names column {}, which table {} does not define",
                    quoted(name),
                    quoted(&display_table(table))
                ),
            );
            continue;
        };
        let data_type = normalize_type(&column.data_type);
        let fits = match field {
            "updated_at" => data_type.starts_with("timestamp"),
            _ => data_type == "text" || data_type.starts_with("character varying"),
        };
        if !fits {
            let wanted = if field == "updated_at" {
                "a `timestamp` or `timestamptz`"
            } else {
                "a `text` or `varchar`"
            };
            findings.error(
                file,
                &at,
                format!(
                    "column {} must be {wanted} column to hold the {} value, but it is {}",
                    quoted(name),
                    if field == "updated_at" {
                        "write time"
                    } else {
                        "writing node's name"
                    },
                    quoted(&data_type)
                ),
            );
        }
        if table.primary_key.iter().any(|k| k == name) {
            findings.error(
                file,
                &at,
                format!(
                    "column {} is part of the primary key; pgconverge rewrites it on every write",
                    quoted(name)
                ),
            );
        }
    }
    if let (Some(a), Some(b)) = (
        table.legacy_columns.updated_at.as_deref(),
        table.legacy_columns.origin_node.as_deref(),
    ) {
        if a == b {
            findings.error(
                file,
                &layout.legacy_column(t, "origin_node"),
                "updated_at and origin_node must be different columns",
            );
        }
    }
}
