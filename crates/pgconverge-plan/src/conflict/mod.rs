//! Conflict-resolution objects (columns, tables, functions, triggers). All of them are the same
//! on every node except `_pgconverge.node_name()`, so they are rendered once per cluster and
//! shared; the bodies call `node_name()` where they need the name.
//!
//! Every local write is stamped with a hybrid logical clock (`_pgc_version`, `_pgc_origin`)
//! and recorded in `_pgconverge.changes`, the only published table. On every other node a
//! REPLICA trigger merges each incoming change into the data table, the tombstones and the
//! unique-value claims, in a way that gives the same result whatever the arrival order.
//! docs/conflicts.md explains the semantics; this module only renders SQL (no I/O), and the
//! same inputs always give byte-identical output.
//!
//! Layering, lowest first; each submodule uses only those on lines above it, besides the
//! [`FunctionDef`] and [`InternalTable`] defined here, which all of them build:
//! - `naming`: names and lock numbers of the objects (no other submodule)
//! - `shape`: naming — one table as the generated SQL sees it, row and stamp comparisons
//! - `internal`: naming, shape — the `_pgconverge` tables, the node-wide functions and the
//!   statements that merge into the tombstone and claim registers (inline or as a call)
//! - `local_writes`: naming, shape, internal — stamp and log functions, the body builder
//!   and the stripe locks
//! - `remote_apply`: naming, shape, internal, local_writes — the apply functions
//! - this file: all of them — the object lists, function fingerprints, triggers

pub mod forwarding;
mod internal;
mod local_writes;
pub mod merge;
pub mod naming;
mod remote_apply;
mod shape;

use std::sync::{Arc, OnceLock};

use pgconverge_model::catalog::QualifiedName;
use pgconverge_model::config::ReplicationConfig;
use pgconverge_model::naming::FUNCTION_COMMENT_PREFIX;
use pgconverge_model::TableConfig;

use naming::{
    internal as internal_name, per_table_function, sha256_hex, APPLY_TRIGGER_KIND, CHANGES_TABLE,
    LOG_TRIGGER, ORIGIN_COLUMN, STAMP_TRIGGER, TRUNCATE_TRIGGER, UNKNOWN_CHANGE_TRIGGER,
    VERSION_COLUMN,
};
use pgconverge_sql::{quote_ident, quote_literal};
use shape::TableShape;

/// What every node needs for conflict resolution, in creation order within each list. Only
/// `node_name()` differs between nodes: [`ConflictObjects::node_functions`] adds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictObjects {
    /// `CREATE SCHEMA IF NOT EXISTS _pgconverge`.
    pub schema_sql: String,
    /// In `_pgconverge`: changes, tombstones, claims, conflicts.
    pub internal_tables: Vec<InternalTable>,
    /// now_us(), refuse_truncate(), prune(), begin_apply(), lock_apply_stripes(),
    /// refuse_unknown_columns(), merge_tombstone(), merge_claim(), record_conflict(),
    /// refuse_unknown_change(), then the stamp, log and apply functions of
    /// each table. Shared by every node's desired state (the bodies of a
    /// large cluster are tens of megabytes).
    pub functions: Vec<Arc<FunctionDef>>,
    /// Per data table: stamp, log, truncate guard, and its apply trigger on
    /// `_pgconverge.changes`; last, the change log's unknown-table guard.
    pub triggers: Vec<Arc<TriggerDef>>,
    /// Added to every replicated table.
    pub reserved_columns: Vec<ReservedColumn>,
    /// What the node's publication must contain: the change log only.
    pub published_tables: Vec<QualifiedName>,
    /// The publication's `publish` list.
    pub publish_operations: Vec<String>,
    /// Which changes each node's subscriptions receive from a peer.
    pub subscription_origin: SubscriptionOrigin,
}

/// Which of the publisher's changes a subscription receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionOrigin {
    /// Only changes made on the publisher itself (the change-log write path).
    None,
    /// Also the changes it applied: the forwarding write path sends on what each node applies.
    Any,
}

impl SubscriptionOrigin {
    /// The option's value as `WITH (origin = …)` and `pg_subscription.suborigin` spell it.
    pub fn as_sql(self) -> &'static str {
        match self {
            SubscriptionOrigin::None => "none",
            SubscriptionOrigin::Any => "any",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalTable {
    pub name: QualifiedName,
    /// `CREATE TABLE IF NOT EXISTS …` then its indexes (`CREATE INDEX IF NOT EXISTS …`).
    pub create_sql: Vec<String>,
    /// Column name and `format_type` spelling, in table order.
    pub columns: Vec<(String, String)>,
}

/// A generated function. Per-table functions are rendered only when their body is needed (to
/// create or replace them, or to show how a live body differs): a no-op plan of a large
/// schema compares fingerprints and never spells out the tens of megabytes of bodies.
#[derive(Debug, Clone)]
pub struct FunctionDef {
    pub name: QualifiedName,
    /// As `pg_get_function_identity_arguments` prints it (empty for no arguments).
    pub identity_arguments: String,
    /// Hex sha256 of everything the body is generated from (the generator's own source and,
    /// for a per-table function, the table's shape). Recorded in the function's comment
    /// ([`FunctionDef::comment_sql`]), so a later plan knows the live body is this one
    /// without rendering it or reading it.
    pub fingerprint: String,
    rendered: OnceLock<RenderedFunction>,
    source: FunctionSource,
}

#[derive(Debug, Clone)]
struct RenderedFunction {
    /// Exactly what `pg_proc.prosrc` holds once the function is created.
    body: String,
    /// Hex sha256 of `body`.
    body_sha256: String,
    /// `CREATE OR REPLACE FUNCTION … AS `: the statement without its body.
    create_prefix: String,
}

#[derive(Debug, Clone)]
enum FunctionSource {
    /// Rendered when built.
    Ready,
    /// Rendered on first use by a generator over the table's shape.
    Table {
        shape: Arc<TableShape>,
        render: fn(&TableShape, &str) -> FunctionDef,
    },
}

/// Every source file whose code shapes generated SQL, as a path from this directory and its
/// text. The generator fingerprint hashes them all; a test fails when a file of this
/// directory, or a crate module they use, is neither here nor listed as generating nothing.
const GENERATOR_SOURCES: &[(&str, &str)] = &[
    ("mod.rs", include_str!("mod.rs")),
    ("forwarding.rs", include_str!("forwarding.rs")),
    ("internal.rs", include_str!("internal.rs")),
    ("local_writes.rs", include_str!("local_writes.rs")),
    ("naming.rs", include_str!("naming.rs")),
    ("remote_apply.rs", include_str!("remote_apply.rs")),
    ("shape.rs", include_str!("shape.rs")),
    (
        "../../../pgconverge-sql/src/quote.rs",
        include_str!("../../../pgconverge-sql/src/quote.rs"),
    ),
];

/// sha256 of the generator's source and version: a changed generator gives every function a
/// new fingerprint, so a plan never trusts a body an older generator made.
fn generator_fingerprint() -> &'static str {
    static FINGERPRINT: OnceLock<String> = OnceLock::new();
    FINGERPRINT.get_or_init(|| {
        let mut sources = vec![env!("CARGO_PKG_VERSION")];
        sources.extend(GENERATOR_SOURCES.iter().map(|(_, text)| *text));
        sha256_hex(&sources.join("\u{0}"))
    })
}

impl PartialEq for FunctionDef {
    fn eq(&self, other: &FunctionDef) -> bool {
        self.name == other.name
            && self.identity_arguments == other.identity_arguments
            && self.fingerprint == other.fingerprint
    }
}

impl Eq for FunctionDef {}

impl FunctionDef {
    fn new(
        name: QualifiedName,
        identity_arguments: &str,
        returns: &str,
        language: &str,
        attributes: &str,
        body: String,
    ) -> FunctionDef {
        let attributes = if attributes.is_empty() {
            String::new()
        } else {
            format!(" {attributes}")
        };
        let create_prefix = format!(
            "CREATE OR REPLACE FUNCTION {}.{}({identity_arguments}) RETURNS {returns} LANGUAGE {language}{attributes} SET search_path = '' AS ",
            quote_ident(&name.schema),
            quote_ident(&name.name),
        );
        let body_sha256 = sha256_hex(&body);
        // The whole statement, not only the body: a changed signature or attribute is a
        // different function.
        let fingerprint = sha256_hex(&format!(
            "{}\u{0}{create_prefix}\u{0}{body_sha256}",
            generator_fingerprint()
        ));
        FunctionDef {
            identity_arguments: identity_arguments.to_string(),
            name,
            fingerprint,
            rendered: OnceLock::from(RenderedFunction {
                body,
                body_sha256,
                create_prefix,
            }),
            source: FunctionSource::Ready,
        }
    }

    /// A PL/pgSQL function without attributes: every trigger function and most shared ones.
    fn plpgsql(
        name: QualifiedName,
        identity_arguments: &str,
        returns: &str,
        body: String,
    ) -> FunctionDef {
        FunctionDef::new(name, identity_arguments, returns, "plpgsql", "", body)
    }

    /// A per-table function `name` that `render` generates from `shape`, rendered on first use.
    fn for_table(
        name: QualifiedName,
        kind: &str,
        shape: &Arc<TableShape>,
        render: fn(&TableShape, &str) -> FunctionDef,
    ) -> FunctionDef {
        let fingerprint = sha256_hex(&format!(
            "{}\u{0}{kind}\u{0}{shape:?}",
            generator_fingerprint()
        ));
        FunctionDef {
            name,
            identity_arguments: String::new(),
            fingerprint,
            rendered: OnceLock::new(),
            source: FunctionSource::Table {
                shape: Arc::clone(shape),
                render,
            },
        }
    }

    fn rendered(&self) -> &RenderedFunction {
        self.rendered.get_or_init(|| match &self.source {
            FunctionSource::Ready => unreachable!("a ready function is rendered when built"),
            FunctionSource::Table { shape, render } => {
                // Bodies ask for the node's name by calling node_name(): the same text on
                // every node.
                let full = render(shape, &internal::node_name_call());
                debug_assert_eq!(full.name, self.name);
                debug_assert_eq!(full.identity_arguments, self.identity_arguments);
                full.rendered().clone()
            }
        })
    }

    /// The table a per-table function is generated for; `None` for shared functions.
    pub fn table(&self) -> Option<&QualifiedName> {
        match &self.source {
            FunctionSource::Table { shape, .. } => Some(&shape.name),
            FunctionSource::Ready => None,
        }
    }

    /// Exactly what `pg_proc.prosrc` holds once [`FunctionDef::create_sql`] has run.
    pub fn body(&self) -> &str {
        &self.rendered().body
    }

    /// Hex sha256 of [`FunctionDef::body`].
    pub fn body_sha256(&self) -> &str {
        &self.rendered().body_sha256
    }

    /// `CREATE OR REPLACE FUNCTION … SET search_path = '' AS $pgc$<body>$pgc$`.
    pub fn create_sql(&self) -> String {
        let rendered = self.rendered();
        let tag = dollar_tag(&rendered.body);
        format!("{}{tag}{}{tag}", rendered.create_prefix, rendered.body)
    }

    /// Sets the function's comment to `pgconverge:<fingerprint>:<xmin>`, `xmin` being the
    /// transaction that wrote its catalog row. Run in the step that creates or replaces the
    /// function, after it: any later replacement writes a new row with another `xmin`, so a
    /// comment that still names the live row's `xmin` vouches for the body without the body
    /// being read. `COMMENT` takes only a literal, hence the `DO` block.
    pub fn comment_sql(&self) -> String {
        let prefix = quote_literal(&format!("{FUNCTION_COMMENT_PREFIX}{}:", self.fingerprint));
        let block = format!(
            " DECLARE f record; BEGIN \
             SELECT p.oid::pg_catalog.regprocedure AS signature, p.xmin::text AS xmin INTO STRICT f \
             FROM pg_catalog.pg_proc p \
             JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
             WHERE n.nspname = {} AND p.proname = {} \
             AND pg_catalog.pg_get_function_identity_arguments(p.oid) = {}; \
             EXECUTE pg_catalog.format('COMMENT ON FUNCTION %s IS %L', f.signature, {prefix} || f.xmin); \
             END ",
            quote_literal(&self.name.schema),
            quote_literal(&self.name.name),
            quote_literal(&self.identity_arguments),
        );
        let tag = dollar_tag(&block);
        format!("DO {tag}{block}{tag}")
    }
}

/// `$pgc$`, or `$pgc_1$`, `$pgc_2$`, … when the body happens to contain it (identifiers in
/// the body come from user configuration).
pub(crate) fn dollar_tag(body: &str) -> String {
    let mut n = 0u32;
    loop {
        let tag = if n == 0 {
            "$pgc$".to_string()
        } else {
            format!("$pgc_{n}$")
        };
        if !body.contains(&tag) {
            return tag;
        }
        n += 1;
    }
}

/// When a trigger fires (`pg_trigger.tgenabled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TriggerFiring {
    /// `O`: local sessions only (the default).
    Local,
    /// `R`: apply workers only.
    Replica,
    /// `A`: both.
    Always,
}

impl TriggerFiring {
    pub fn tgenabled(self) -> &'static str {
        match self {
            TriggerFiring::Local => "O",
            TriggerFiring::Replica => "R",
            TriggerFiring::Always => "A",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TriggerDef {
    pub table: QualifiedName,
    pub name: String,
    pub function: QualifiedName,
    pub enabled: TriggerFiring,
    /// The `WHEN` condition, as written in `create_sql`.
    pub when: Option<String>,
    /// `CREATE OR REPLACE TRIGGER …`, then `ALTER TABLE … ENABLE REPLICA|ALWAYS TRIGGER …`
    /// when it must not fire locally.
    pub create_sql: Vec<String>,
    pub drop_sql: String,
}

impl TriggerDef {
    fn new(
        table: &QualifiedName,
        name: &str,
        timing_events: &str,
        level: &str,
        when: Option<&str>,
        function: QualifiedName,
        enabled: TriggerFiring,
    ) -> TriggerDef {
        let on = format!(
            "{}.{}",
            quote_ident(&table.schema),
            quote_ident(&table.name)
        );
        let when_sql = when.map(|w| format!(" WHEN ({w})")).unwrap_or_default();
        let mut create_sql = vec![format!(
            "CREATE OR REPLACE TRIGGER {} {timing_events} ON {on} FOR EACH {level}{when_sql} EXECUTE FUNCTION {}.{}()",
            quote_ident(name),
            quote_ident(&function.schema),
            quote_ident(&function.name)
        )];
        match enabled {
            TriggerFiring::Local => {}
            TriggerFiring::Replica => create_sql.push(format!(
                "ALTER TABLE {on} ENABLE REPLICA TRIGGER {}",
                quote_ident(name)
            )),
            TriggerFiring::Always => create_sql.push(format!(
                "ALTER TABLE {on} ENABLE ALWAYS TRIGGER {}",
                quote_ident(name)
            )),
        }
        TriggerDef {
            drop_sql: format!("DROP TRIGGER IF EXISTS {} ON {on}", quote_ident(name)),
            table: table.clone(),
            name: name.to_string(),
            function,
            enabled,
            when: when.map(str::to_string),
            create_sql,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReservedColumn {
    pub name: String,
    /// `format_type` spelling.
    pub data_type: String,
    pub not_null: bool,
    /// As `pg_get_expr` prints it.
    pub default: Option<String>,
}

/// The reserved columns every replicated table carries. Rows that existed before get the
/// defaults, identical on every node, so comparisons against them are deterministic.
pub fn reserved_columns() -> Vec<ReservedColumn> {
    vec![
        ReservedColumn {
            name: VERSION_COLUMN.to_string(),
            data_type: "bigint".to_string(),
            not_null: true,
            default: Some("0".to_string()),
        },
        ReservedColumn {
            name: ORIGIN_COLUMN.to_string(),
            data_type: "text".to_string(),
            not_null: true,
            default: Some("''::text".to_string()),
        },
    ]
}

/// The stamp, log and apply functions of every table, in table order, each rendered only
/// when its body is needed.
fn table_functions(shapes: &[Arc<TableShape>]) -> Vec<FunctionDef> {
    type Render = fn(&TableShape, &str) -> FunctionDef;
    let mut functions = Vec::with_capacity(shapes.len() * 3);
    for shape in shapes {
        let kinds: [(&QualifiedName, &str, Render); 3] = [
            (&shape.stamp_function, "stamp", local_writes::stamp_function),
            (&shape.log_function, "log", local_writes::log_function),
            (&shape.apply_function, "apply", remote_apply::apply_function),
        ];
        for (name, kind, render) in kinds {
            functions.push(FunctionDef::for_table(name.clone(), kind, shape, render));
        }
    }
    functions
}

/// The conflict-resolution objects of every node for `tables`. Function bodies depend only on
/// the table definitions and the retention settings, never on the node.
pub fn cluster_objects(
    tables: &[TableConfig],
    replication: &ReplicationConfig,
    dropped_tables: &[QualifiedName],
) -> ConflictObjects {
    let shapes: Vec<Arc<TableShape>> = tables
        .iter()
        .map(|table| Arc::new(TableShape::new(table)))
        .collect();

    let mut functions = vec![
        internal::now_us_function(),
        internal::refuse_truncate_function(),
        internal::prune_function(replication),
        remote_apply::begin_apply_function(),
        remote_apply::lock_apply_stripes_function(),
        remote_apply::refuse_unknown_columns_function(),
        internal::merge_tombstone_function(),
        internal::merge_claim_function(),
        internal::record_conflict_function(),
        remote_apply::unknown_change_function(dropped_tables),
    ];
    let changes = internal_name(CHANGES_TABLE);
    let mut triggers = Vec::new();
    functions.extend(table_functions(&shapes));
    for shape in &shapes {
        triggers.push(TriggerDef::new(
            &shape.name,
            STAMP_TRIGGER,
            "BEFORE INSERT OR UPDATE",
            "ROW",
            None,
            shape.stamp_function.clone(),
            TriggerFiring::Local,
        ));
        triggers.push(TriggerDef::new(
            &shape.name,
            LOG_TRIGGER,
            "AFTER INSERT OR UPDATE OR DELETE",
            "ROW",
            None,
            shape.log_function.clone(),
            TriggerFiring::Local,
        ));
        triggers.push(TriggerDef::new(
            &shape.name,
            TRUNCATE_TRIGGER,
            "BEFORE TRUNCATE",
            "STATEMENT",
            None,
            internal_name(naming::REFUSE_TRUNCATE_FUNCTION),
            TriggerFiring::Local,
        ));
        // The WHEN clause is evaluated without calling any function: only the table's own
        // apply function runs for a change.
        triggers.push(TriggerDef::new(
            &changes,
            &per_table_function(APPLY_TRIGGER_KIND, &shape.name).name,
            "BEFORE INSERT",
            "ROW",
            Some(&format!("new.tbl = {}", shape.key_literal)),
            shape.apply_function.clone(),
            TriggerFiring::Replica,
        ));
    }
    triggers.push(TriggerDef::new(
        &changes,
        UNKNOWN_CHANGE_TRIGGER,
        "BEFORE INSERT",
        "ROW",
        None,
        internal_name(naming::UNKNOWN_CHANGE_FUNCTION),
        TriggerFiring::Replica,
    ));

    ConflictObjects {
        schema_sql: internal::schema_sql(),
        internal_tables: internal::internal_tables(),
        functions: functions.into_iter().map(Arc::new).collect(),
        triggers: triggers.into_iter().map(Arc::new).collect(),
        reserved_columns: reserved_columns(),
        published_tables: vec![internal_name(CHANGES_TABLE)],
        publish_operations: vec!["insert".to_string()],
        subscription_origin: SubscriptionOrigin::None,
    }
}

impl ConflictObjects {
    /// The functions of node `node_name`, in creation order: its `node_name()`, then the
    /// shared ones (sharing, not copying, their bodies).
    pub fn node_functions(&self, node_name: &str) -> Vec<Arc<FunctionDef>> {
        let mut functions = Vec::with_capacity(self.functions.len() + 1);
        functions.push(Arc::new(internal::node_name_function(node_name)));
        functions.extend(self.functions.iter().cloned());
        functions
    }
}

#[cfg(test)]
mod tests;
