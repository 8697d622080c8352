//! Reads a node's catalogs into a [`NodeCatalog`] with one set-based `pg_catalog` query per
//! object kind, all pipelined on one connection inside one read-only snapshot.
//!
//! No `information_schema` (its views are slow on large schemas) and no per-table round
//! trips: the cost is a handful of round trips whatever the number of tables. Every list is
//! sorted here, so unchanged catalogs always produce an equal snapshot.

use std::collections::BTreeMap;

use futures_util::future::join_all;
use pgconverge_model::catalog::{
    ColumnCatalog, ConstraintCatalog, ConstraintKind, FunctionCatalog, IndexCatalog,
    PublicationCatalog, QualifiedName, RoleInfo, SlotCatalog, SubscriptionCatalog, TableCatalog,
    TriggerCatalog,
};
use pgconverge_model::{NodeCatalog, NodeConfig};
use sha2::{Digest, Sha256};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Row};

use crate::connect::{connect, ConnectError};
use crate::credentials::Secret;
use crate::query_error::QueryError;
use crate::redact::redact_conninfo;

/// Which schemas' tables and functions to read. Schemas, publications, subscriptions, slots
/// and settings are read whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntrospectScope {
    /// e.g. `["public", "_pgconverge"]`.
    pub schemas: Vec<String>,
}

/// Server settings that decide whether logical replication can work, read from `pg_settings`.
pub const REPLICATION_SETTINGS: [&str; 6] = [
    "max_logical_replication_workers",
    "max_replication_slots",
    "max_sync_workers_per_subscription",
    "max_wal_senders",
    "max_worker_processes",
    "wal_level",
];

#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot read {what}: {error}")]
pub struct IntrospectError {
    /// The object kind being read, e.g. `tables`.
    pub what: &'static str,
    pub error: QueryError,
}

/// Connecting to or reading one node failed; names the node.
#[derive(Debug, Clone, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("node {node}: {error}")]
    Introspect {
        node: String,
        error: IntrospectError,
    },
}

impl NodeError {
    pub fn node(&self) -> &str {
        match self {
            NodeError::Connect(error) => &error.node,
            NodeError::Introspect { node, .. } => node,
        }
    }
}

/// Connects to every node concurrently and introspects it. One result per node, in the order
/// given; a node that fails does not stop the others.
pub async fn introspect_nodes(
    nodes: &[(NodeConfig, Option<Secret>)],
    scope: &IntrospectScope,
) -> Vec<Result<NodeCatalog, NodeError>> {
    join_all(nodes.iter().map(|(node, password)| async move {
        let client = connect(node, password.as_ref()).await?;
        introspect(&client, scope)
            .await
            .map_err(|error| NodeError::Introspect {
                node: node.name.clone(),
                error,
            })
    }))
    .await
}

/// Reads the catalog snapshot of the database `client` is connected to.
///
/// Runs inside `BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY` so all queries see the same
/// catalog state; the client must not be inside a transaction of its own.
pub async fn introspect(
    client: &Client,
    scope: &IntrospectScope,
) -> Result<NodeCatalog, IntrospectError> {
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await
        .map_err(failed("a catalog snapshot"))?;
    let result = read_catalog(client, scope).await;
    // Read-only: ending it either way changes nothing, and COMMIT also ends an aborted one.
    let end = client
        .batch_execute("COMMIT")
        .await
        .map_err(failed("a catalog snapshot"));
    let catalog = result?;
    end?;
    Ok(catalog)
}

fn failed(what: &'static str) -> impl Fn(tokio_postgres::Error) -> IntrospectError {
    move |error| IntrospectError {
        what,
        error: QueryError::from(&error),
    }
}

async fn read_catalog(
    client: &Client,
    scope: &IntrospectScope,
) -> Result<NodeCatalog, IntrospectError> {
    let scope_params: [(&(dyn ToSql + Sync), Type); 1] = [(&scope.schemas, Type::TEXT_ARRAY)];
    let settings_names: Vec<&str> = REPLICATION_SETTINGS.to_vec();
    let settings_params: [(&(dyn ToSql + Sync), Type); 1] = [(&settings_names, Type::TEXT_ARRAY)];

    // Issued together, so tokio-postgres pipelines them: a few round trips in all. The
    // subscription query waits for the server query because the columns it may select depend
    // on the role's privileges.
    let server_and_subscriptions = async {
        let rows = client
            .query_typed(SERVER_SQL, &[])
            .await
            .map_err(failed("server"))?;
        let server = decode_server(&rows)?;
        let sql = if server.can_read_conninfo {
            SUBSCRIPTIONS_SQL
        } else {
            SUBSCRIPTIONS_WITHOUT_CONNINFO_SQL
        };
        let rows = client
            .query_typed(sql, &[])
            .await
            .map_err(failed("subscriptions"))?;
        Ok::<_, IntrospectError>((server, rows))
    };
    let (
        (server, subscription_rows),
        setting_rows,
        schema_rows,
        table_rows,
        constraint_rows,
        index_rows,
        trigger_rows,
        function_rows,
        publication_rows,
        slot_rows,
    ) = futures_util::try_join!(
        server_and_subscriptions,
        query(client, "settings", SETTINGS_SQL, &settings_params),
        query(client, "schemas", SCHEMAS_SQL, &[]),
        query(client, "tables", TABLES_SQL, &scope_params),
        query(client, "constraints", CONSTRAINTS_SQL, &scope_params),
        query(client, "indexes", INDEXES_SQL, &scope_params),
        query(client, "triggers", TRIGGERS_SQL, &scope_params),
        query(client, "functions", FUNCTIONS_SQL, &scope_params),
        query(client, "publications", PUBLICATIONS_SQL, &[]),
        query(client, "replication slots", SLOTS_SQL, &[]),
    )?;

    let mut tables = decode_tables(&table_rows)?;
    attach_constraints(&mut tables, &constraint_rows)?;
    attach_indexes(&mut tables, &index_rows)?;
    attach_triggers(&mut tables, &trigger_rows)?;

    Ok(NodeCatalog {
        server_version_num: server.version_num,
        server_version: server.version,
        settings: decode_pairs(&setting_rows, "settings")?,
        database_settings: server.database_settings,
        role: server.role,
        schemas: decode_schemas(&schema_rows)?,
        tables,
        functions: decode_functions(&function_rows)?,
        publications: decode_publications(&publication_rows)?,
        subscriptions: decode_subscriptions(&subscription_rows)?,
        slots: decode_slots(&slot_rows)?,
    })
}

async fn query(
    client: &Client,
    what: &'static str,
    sql: &str,
    params: &[(&(dyn ToSql + Sync), Type)],
) -> Result<Vec<Row>, IntrospectError> {
    client.query_typed(sql, params).await.map_err(failed(what))
}

/// Reads column `index` of `row`, naming the object kind if the value has an unexpected type.
fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    index: usize,
    what: &'static str,
) -> Result<T, IntrospectError> {
    row.try_get(index).map_err(failed(what))
}

// Every catalog name is schema-qualified so a hostile search_path cannot shadow it, and
// every `name`/`"char"` column is cast to text so it decodes as a Rust String.

const SERVER_SQL: &str = "
SELECT pg_catalog.current_setting('server_version_num')::int4,
       pg_catalog.current_setting('server_version'),
       r.rolname::text,
       r.rolsuper,
       r.rolreplication,
       r.rolsuper OR EXISTS (
           SELECT 1 FROM pg_catalog.pg_roles g
           WHERE g.rolname = 'pg_create_subscription'
             AND pg_catalog.pg_has_role(r.oid, g.oid, 'USAGE')),
       pg_catalog.has_column_privilege('pg_catalog.pg_subscription', 'subconninfo', 'SELECT'),
       ARRAY(SELECT pg_catalog.unnest(s.setconfig)
             FROM pg_catalog.pg_db_role_setting s
             JOIN pg_catalog.pg_database d ON d.oid = s.setdatabase
             WHERE d.datname = pg_catalog.current_database() AND s.setrole = 0)
FROM pg_catalog.pg_roles r
WHERE r.rolname = current_user";

const SETTINGS_SQL: &str = "
SELECT name::text, setting FROM pg_catalog.pg_settings WHERE name = ANY($1)";

const SCHEMAS_SQL: &str = "
SELECT nspname::text FROM pg_catalog.pg_namespace
WHERE nspname !~ '^pg_' AND nspname <> 'information_schema'";

/// One row per table, its columns as parallel arrays in `attnum` order.
const TABLES_SQL: &str = "
SELECT n.nspname::text, c.relname::text, c.relreplident::text, c.reltuples::float8,
       cols.names, cols.types, cols.not_nulls, cols.defaults
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN LATERAL (
    SELECT pg_catalog.array_agg(a.attname::text ORDER BY a.attnum) AS names,
           pg_catalog.array_agg(pg_catalog.format_type(a.atttypid, a.atttypmod)
                                ORDER BY a.attnum) AS types,
           pg_catalog.array_agg(a.attnotnull ORDER BY a.attnum) AS not_nulls,
           -- A generated column's expression is not a default.
           pg_catalog.array_agg(CASE WHEN a.attgenerated = ''
                                     THEN pg_catalog.pg_get_expr(d.adbin, d.adrelid) END
                                ORDER BY a.attnum) AS defaults
    FROM pg_catalog.pg_attribute a
    LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
) cols ON true
WHERE n.nspname = ANY($1) AND c.relkind IN ('r', 'p')";

/// Key columns in key order; for foreign keys also the referenced table and columns.
/// PostgreSQL 18's not-null constraints (`n`) are read as column attributes instead.
const CONSTRAINTS_SQL: &str = "
SELECT n.nspname::text, c.relname::text, k.conname::text, k.contype::text,
       ARRAY(SELECT a.attname::text
             FROM pg_catalog.unnest(k.conkey) WITH ORDINALITY AS u(attnum, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.attnum
             ORDER BY u.ord),
       pg_catalog.pg_get_constraintdef(k.oid),
       fn.nspname::text, fc.relname::text,
       ARRAY(SELECT a.attname::text
             FROM pg_catalog.unnest(k.confkey) WITH ORDINALITY AS u(attnum, ord)
             JOIN pg_catalog.pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.attnum
             ORDER BY u.ord)
FROM pg_catalog.pg_constraint k
JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_class fc ON fc.oid = k.confrelid
LEFT JOIN pg_catalog.pg_namespace fn ON fn.oid = fc.relnamespace
WHERE n.nspname = ANY($1) AND c.relkind IN ('r', 'p')
  AND k.contype IN ('p', 'u', 'f', 'c', 'x')";

/// Valid indexes that no primary key, unique or exclusion constraint of the table owns. (A
/// foreign key also points at an index, on the referenced table: that does not make the index
/// part of a constraint of its own table.) Key columns only, not INCLUDE columns; an
/// expression key is shown as its expression.
const INDEXES_SQL: &str = "
SELECT n.nspname::text, c.relname::text, ic.relname::text, i.indisunique,
       ARRAY(SELECT CASE WHEN u.attnum = 0
                         THEN pg_catalog.pg_get_indexdef(i.indexrelid, u.ord::int4, true)
                         ELSE a.attname::text END
             FROM pg_catalog.unnest(i.indkey::int2[]) WITH ORDINALITY AS u(attnum, ord)
             LEFT JOIN pg_catalog.pg_attribute a
                    ON a.attrelid = i.indrelid AND a.attnum = u.attnum
             WHERE u.ord <= i.indnkeyatts
             ORDER BY u.ord),
       pg_catalog.pg_get_indexdef(i.indexrelid)
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY($1) AND c.relkind IN ('r', 'p') AND i.indisvalid
  AND NOT EXISTS (
      SELECT 1 FROM pg_catalog.pg_constraint k
      WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid
        AND k.contype IN ('p', 'u', 'x'))";

const TRIGGERS_SQL: &str = "
SELECT n.nspname::text, c.relname::text, t.tgname::text, pn.nspname::text, p.proname::text,
       t.tgenabled::text, pg_catalog.pg_get_triggerdef(t.oid)
FROM pg_catalog.pg_trigger t
JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace
WHERE NOT t.tgisinternal AND n.nspname = ANY($1) AND c.relkind IN ('r', 'p')";

/// Plain functions only: `pg_get_functiondef` fails on aggregates, and procedures and window
/// functions are not pgconverge's. Functions owned by an extension are the extension's.
const FUNCTIONS_SQL: &str = "
SELECT n.nspname::text, p.proname::text, pg_catalog.pg_get_functiondef(p.oid), p.prosrc,
       pg_catalog.pg_get_function_identity_arguments(p.oid)
FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = ANY($1) AND p.prokind = 'f'
  AND NOT EXISTS (
      SELECT 1 FROM pg_catalog.pg_depend d
      WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.objid = p.oid
        AND d.deptype = 'e')";

/// Tables listed explicitly (`pg_publication_rel`). Schema membership (`FOR TABLES IN
/// SCHEMA`, `pg_publication_namespace`), row filters and column lists have no place in
/// `PublicationCatalog` and are not read: pgconverge creates table-list publications only.
const PUBLICATIONS_SQL: &str = "
SELECT p.pubname::text, p.puballtables, p.pubinsert, p.pubupdate, p.pubdelete, p.pubtruncate,
       rel.schemas, rel.names
FROM pg_catalog.pg_publication p
LEFT JOIN LATERAL (
    SELECT pg_catalog.array_agg(n.nspname::text ORDER BY n.nspname, c.relname) AS schemas,
           pg_catalog.array_agg(c.relname::text ORDER BY n.nspname, c.relname) AS names
    FROM pg_catalog.pg_publication_rel r
    JOIN pg_catalog.pg_class c ON c.oid = r.prrelid
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE r.prpubid = p.oid
) rel ON true";

/// Subscriptions of the current database. `subconninfo` is revoked from roles other than
/// superusers, so the second form selects NULL in its place.
const SUBSCRIPTIONS_SQL: &str = "
SELECT s.subname::text, s.subconninfo, s.subpublications, s.subenabled, s.suborigin,
       s.subslotname::text, pg_catalog.pg_get_userbyid(s.subowner)::text
FROM pg_catalog.pg_subscription s
JOIN pg_catalog.pg_database d ON d.oid = s.subdbid
WHERE d.datname = pg_catalog.current_database()";

const SUBSCRIPTIONS_WITHOUT_CONNINFO_SQL: &str = "
SELECT s.subname::text, NULL::text, s.subpublications, s.subenabled, s.suborigin,
       s.subslotname::text, pg_catalog.pg_get_userbyid(s.subowner)::text
FROM pg_catalog.pg_subscription s
JOIN pg_catalog.pg_database d ON d.oid = s.subdbid
WHERE d.datname = pg_catalog.current_database()";

const SLOTS_SQL: &str = "
SELECT slot_name::text, plugin::text, slot_type, database::text, active, wal_status,
       confirmed_flush_lsn::text
FROM pg_catalog.pg_replication_slots";

struct ServerInfo {
    version_num: u32,
    version: String,
    role: RoleInfo,
    can_read_conninfo: bool,
    database_settings: BTreeMap<String, String>,
}

fn decode_server(rows: &[Row]) -> Result<ServerInfo, IntrospectError> {
    const WHAT: &str = "server";
    let Some(row) = rows.first() else {
        return Err(IntrospectError {
            what: WHAT,
            error: QueryError {
                sqlstate: None,
                message: "the current role is not in pg_roles".to_string(),
                detail: None,
                hint: None,
            },
        });
    };
    let version_num: i32 = get(row, 0, WHAT)?;
    let database_settings: Vec<String> = get(row, 7, WHAT)?;
    Ok(ServerInfo {
        // server_version_num is never negative; 0 would only hide a broken server.
        version_num: u32::try_from(version_num).unwrap_or(0),
        version: get(row, 1, WHAT)?,
        role: RoleInfo {
            name: get(row, 2, WHAT)?,
            superuser: get(row, 3, WHAT)?,
            replication: get(row, 4, WHAT)?,
            create_subscription: get(row, 5, WHAT)?,
        },
        can_read_conninfo: get(row, 6, WHAT)?,
        database_settings: parse_database_settings(&database_settings),
    })
}

/// `setconfig` entries are `name=value`; the value may itself contain `=`.
fn parse_database_settings(entries: &[String]) -> BTreeMap<String, String> {
    entries
        .iter()
        .filter_map(|entry| entry.split_once('='))
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

fn decode_pairs(
    rows: &[Row],
    what: &'static str,
) -> Result<BTreeMap<String, String>, IntrospectError> {
    rows.iter()
        .map(|row| Ok((get(row, 0, what)?, get(row, 1, what)?)))
        .collect()
}

fn decode_schemas(rows: &[Row]) -> Result<Vec<String>, IntrospectError> {
    let mut schemas = rows
        .iter()
        .map(|row| get(row, 0, "schemas"))
        .collect::<Result<Vec<String>, _>>()?;
    schemas.sort();
    Ok(schemas)
}

fn decode_tables(rows: &[Row]) -> Result<BTreeMap<QualifiedName, TableCatalog>, IntrospectError> {
    const WHAT: &str = "tables";
    let mut tables = BTreeMap::new();
    for row in rows {
        let name = QualifiedName::new(get::<String>(row, 0, WHAT)?, get::<String>(row, 1, WHAT)?);
        let names: Option<Vec<String>> = get(row, 4, WHAT)?;
        let types: Option<Vec<String>> = get(row, 5, WHAT)?;
        let not_nulls: Option<Vec<bool>> = get(row, 6, WHAT)?;
        let defaults: Option<Vec<Option<String>>> = get(row, 7, WHAT)?;
        let columns = names
            .unwrap_or_default()
            .into_iter()
            .zip(types.unwrap_or_default())
            .zip(not_nulls.unwrap_or_default())
            .zip(defaults.unwrap_or_default())
            .map(|(((name, data_type), not_null), default)| ColumnCatalog {
                name,
                data_type,
                not_null,
                default,
            })
            .collect();
        let reltuples: f64 = get(row, 3, WHAT)?;
        tables.insert(
            name,
            TableCatalog {
                columns,
                replica_identity: get(row, 2, WHAT)?,
                // `as` saturates; reltuples is a float estimate, -1 when never analysed.
                estimated_rows: reltuples as i64,
                ..TableCatalog::default()
            },
        );
    }
    Ok(tables)
}

fn constraint_kind(contype: &str) -> Option<ConstraintKind> {
    match contype {
        "p" => Some(ConstraintKind::PrimaryKey),
        "u" => Some(ConstraintKind::Unique),
        "f" => Some(ConstraintKind::ForeignKey),
        "c" => Some(ConstraintKind::Check),
        "x" => Some(ConstraintKind::Exclusion),
        _ => None,
    }
}

/// Rows of constraints, indexes and triggers name their table first; ones whose table is not
/// in the map (it cannot happen inside one snapshot) are dropped rather than invented.
fn table_of<'t>(
    tables: &'t mut BTreeMap<QualifiedName, TableCatalog>,
    row: &Row,
    what: &'static str,
) -> Result<Option<&'t mut TableCatalog>, IntrospectError> {
    let name = QualifiedName::new(get::<String>(row, 0, what)?, get::<String>(row, 1, what)?);
    Ok(tables.get_mut(&name))
}

fn attach_constraints(
    tables: &mut BTreeMap<QualifiedName, TableCatalog>,
    rows: &[Row],
) -> Result<(), IntrospectError> {
    const WHAT: &str = "constraints";
    for row in rows {
        let contype: String = get(row, 3, WHAT)?;
        let Some(kind) = constraint_kind(&contype) else {
            continue;
        };
        let references = match (
            get::<Option<String>>(row, 6, WHAT)?,
            get::<Option<String>>(row, 7, WHAT)?,
        ) {
            (Some(schema), Some(table)) if kind == ConstraintKind::ForeignKey => {
                Some((QualifiedName::new(schema, table), get(row, 8, WHAT)?))
            }
            _ => None,
        };
        let constraint = ConstraintCatalog {
            name: get(row, 2, WHAT)?,
            kind,
            columns: get(row, 4, WHAT)?,
            definition: get(row, 5, WHAT)?,
            references,
        };
        if let Some(table) = table_of(tables, row, WHAT)? {
            table.constraints.push(constraint);
        }
    }
    for table in tables.values_mut() {
        table.constraints.sort_by(|a, b| a.name.cmp(&b.name));
    }
    Ok(())
}

fn attach_indexes(
    tables: &mut BTreeMap<QualifiedName, TableCatalog>,
    rows: &[Row],
) -> Result<(), IntrospectError> {
    const WHAT: &str = "indexes";
    for row in rows {
        let index = IndexCatalog {
            name: get(row, 2, WHAT)?,
            unique: get(row, 3, WHAT)?,
            columns: get(row, 4, WHAT)?,
            definition: get(row, 5, WHAT)?,
        };
        if let Some(table) = table_of(tables, row, WHAT)? {
            table.indexes.push(index);
        }
    }
    for table in tables.values_mut() {
        table.indexes.sort_by(|a, b| a.name.cmp(&b.name));
    }
    Ok(())
}

fn attach_triggers(
    tables: &mut BTreeMap<QualifiedName, TableCatalog>,
    rows: &[Row],
) -> Result<(), IntrospectError> {
    const WHAT: &str = "triggers";
    for row in rows {
        let trigger = TriggerCatalog {
            name: get(row, 2, WHAT)?,
            function: QualifiedName::new(
                get::<String>(row, 3, WHAT)?,
                get::<String>(row, 4, WHAT)?,
            ),
            enabled: get(row, 5, WHAT)?,
            definition: get(row, 6, WHAT)?,
        };
        if let Some(table) = table_of(tables, row, WHAT)? {
            table.triggers.push(trigger);
        }
    }
    for table in tables.values_mut() {
        table.triggers.sort_by(|a, b| a.name.cmp(&b.name));
    }
    Ok(())
}

/// Overloads share a key; the one with the greatest identity arguments is kept, so the pick
/// does not depend on row order.
fn decode_functions(
    rows: &[Row],
) -> Result<BTreeMap<QualifiedName, FunctionCatalog>, IntrospectError> {
    const WHAT: &str = "functions";
    let mut functions: BTreeMap<QualifiedName, FunctionCatalog> = BTreeMap::new();
    for row in rows {
        let name = QualifiedName::new(get::<String>(row, 0, WHAT)?, get::<String>(row, 1, WHAT)?);
        let source: String = get(row, 3, WHAT)?;
        let function = FunctionCatalog {
            definition: get(row, 2, WHAT)?,
            body_sha256: sha256_hex(source.trim()),
            identity_arguments: get(row, 4, WHAT)?,
        };
        match functions.get(&name) {
            Some(kept) if kept.identity_arguments >= function.identity_arguments => {}
            _ => {
                functions.insert(name, function);
            }
        }
    }
    Ok(functions)
}

fn decode_publications(
    rows: &[Row],
) -> Result<BTreeMap<String, PublicationCatalog>, IntrospectError> {
    const WHAT: &str = "publications";
    let mut publications = BTreeMap::new();
    for row in rows {
        let operations = ["insert", "update", "delete", "truncate"];
        let mut publish = Vec::new();
        for (offset, operation) in operations.iter().enumerate() {
            if get::<bool>(row, 2 + offset, WHAT)? {
                publish.push(operation.to_string());
            }
        }
        let schemas: Option<Vec<String>> = get(row, 6, WHAT)?;
        let names: Option<Vec<String>> = get(row, 7, WHAT)?;
        let mut tables: Vec<QualifiedName> = schemas
            .unwrap_or_default()
            .into_iter()
            .zip(names.unwrap_or_default())
            .map(|(schema, name)| QualifiedName::new(schema, name))
            .collect();
        tables.sort();
        publications.insert(
            get::<String>(row, 0, WHAT)?,
            PublicationCatalog {
                all_tables: get(row, 1, WHAT)?,
                publish,
                tables,
            },
        );
    }
    Ok(publications)
}

/// When the role may not read `subconninfo`, `conninfo_redacted` and `conninfo_sha256` are
/// both empty: the subscription is known to exist, its connection string is not.
fn decode_subscriptions(
    rows: &[Row],
) -> Result<BTreeMap<String, SubscriptionCatalog>, IntrospectError> {
    const WHAT: &str = "subscriptions";
    let mut subscriptions = BTreeMap::new();
    for row in rows {
        let conninfo: Option<String> = get(row, 1, WHAT)?;
        let (conninfo_redacted, conninfo_sha256) = match conninfo {
            Some(conninfo) => (redact_conninfo(&conninfo), sha256_hex(&conninfo)),
            None => (String::new(), String::new()),
        };
        let mut publications: Vec<String> = get(row, 2, WHAT)?;
        publications.sort();
        subscriptions.insert(
            get::<String>(row, 0, WHAT)?,
            SubscriptionCatalog {
                conninfo_redacted,
                conninfo_sha256,
                publications,
                enabled: get(row, 3, WHAT)?,
                origin: get(row, 4, WHAT)?,
                slot_name: get(row, 5, WHAT)?,
                owner: get(row, 6, WHAT)?,
            },
        );
    }
    Ok(subscriptions)
}

fn decode_slots(rows: &[Row]) -> Result<BTreeMap<String, SlotCatalog>, IntrospectError> {
    const WHAT: &str = "replication slots";
    let mut slots = BTreeMap::new();
    for row in rows {
        slots.insert(
            get::<String>(row, 0, WHAT)?,
            SlotCatalog {
                plugin: get(row, 1, WHAT)?,
                slot_type: get(row, 2, WHAT)?,
                database: get(row, 3, WHAT)?,
                active: get(row, 4, WHAT)?,
                wal_status: get(row, 5, WHAT)?,
                confirmed_flush_lsn: get(row, 6, WHAT)?,
            },
        );
    }
    Ok(slots)
}

fn sha256_hex(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut hex = String::with_capacity(digest.len() * 2);
    for byte in digest {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_settings_split_at_first_equals() {
        let entries = vec![
            "search_path=public, \"$user\"".to_string(),
            "app.expr=a=b".to_string(),
            "garbage".to_string(),
        ];
        let parsed = parse_database_settings(&entries);
        assert_eq!(
            parsed.get("search_path").map(String::as_str),
            Some("public, \"$user\"")
        );
        assert_eq!(parsed.get("app.expr").map(String::as_str), Some("a=b"));
        assert_eq!(parsed.len(), 2);
    }

    #[test]
    fn sha256_is_lowercase_hex() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn constraint_kinds_map_and_not_null_is_skipped() {
        assert_eq!(constraint_kind("p"), Some(ConstraintKind::PrimaryKey));
        assert_eq!(constraint_kind("x"), Some(ConstraintKind::Exclusion));
        assert_eq!(constraint_kind("n"), None);
    }
}
