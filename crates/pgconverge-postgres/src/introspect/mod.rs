//! Reads a node's catalogs into a [`NodeCatalog`] with one set-based `pg_catalog` query per
//! object kind, all pipelined on one connection inside one read-only snapshot.
//!
//! No `information_schema` (its views are slow on large schemas) and no per-table round
//! trips: the cost is a handful of round trips whatever the number of tables. Every list is
//! sorted here, so unchanged catalogs always produce an equal snapshot.
//!
//! Server-side cost matters as much as round trips: every node's catalogs are read at once
//! and a fresh session starts with cold catalog caches, so per-row functions that look
//! catalogs up (`pg_get_indexdef`, `pg_get_constraintdef`, `pg_get_triggerdef`,
//! `pg_get_expr` with a table) are avoided where the same text can be had from plain
//! columns; tests hold the texts built here equal to the server's. Functions are read as
//! their stored body (`prosrc`), never printed whole.

mod decode;
mod outside;
mod partitions;
mod queries;
#[cfg(test)]
mod server_tests;
mod tables;

use std::collections::BTreeMap;

use futures_util::future::join_all;
use futures_util::TryStreamExt;
use pgconverge_model::catalog::MembershipCatalog;
use pgconverge_model::catalog::{FunctionCatalog, QualifiedName};
use pgconverge_model::catalog::{OutsideObject, TableCatalog};
use pgconverge_model::key_blocks::KeyWidth;
use pgconverge_model::naming::{
    FUNCTION_COMMENT_PREFIX, INTERNAL_SCHEMA, KEY_SLOT_TABLE, MEMBERSHIP_TABLE, SQL_FILES_TABLE,
};
use pgconverge_model::{NodeCatalog, NodeConfig};
use pgconverge_sql::{quote_ident, quote_qualified};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Row};

use crate::connect::{connect, ConnectError};
use crate::credentials::Secret;
use crate::query_error::QueryError;
use queries::*;

/// Which schemas' tables and functions to read. Schemas, publications, subscriptions, slots
/// and settings are read whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntrospectScope {
    /// e.g. `["public", "_pgconverge"]`.
    pub schemas: Vec<String>,
    /// The fingerprint each function is expected to carry in its comment. A function that
    /// carries it, with its body unchanged since, is returned with its hash and fingerprint
    /// but without its body, which the server does not even send: a plan only shows the
    /// bodies that differ, and the bodies of a large schema are tens of megabytes per node.
    pub expected_function_fingerprints: BTreeMap<QualifiedName, String>,
}

/// `server_version_num` of PostgreSQL 16.0, the oldest release pgconverge supports.
pub const OLDEST_SUPPORTED_VERSION_NUM: u32 = 160000;

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
///
/// Each node is read in a task of its own, so on a multi-threaded runtime decoding and
/// hashing one node's rows (most of the client's work) runs beside the others'.
pub async fn introspect_nodes(
    nodes: &[(NodeConfig, Option<Secret>)],
    scope: &IntrospectScope,
) -> Vec<Result<NodeCatalog, NodeError>> {
    let tasks = nodes.iter().map(|(node, password)| {
        let (node, password, scope) = (node.clone(), password.clone(), scope.clone());
        let name = node.name.clone();
        let task = tokio::spawn(async move {
            let client = connect(&node, password.as_ref()).await?;
            introspect(&client, &scope)
                .await
                .map_err(|error| NodeError::Introspect {
                    node: node.name.clone(),
                    error,
                })
        });
        async move {
            match task.await {
                Ok(result) => result,
                Err(join_error) => match join_error.try_into_panic() {
                    Ok(panic) => std::panic::resume_unwind(panic),
                    // Only a runtime shutting down cancels the task.
                    Err(_) => Err(NodeError::Introspect {
                        node: name,
                        error: inconsistent(
                            "the catalogs",
                            "introspection was cancelled".to_string(),
                        ),
                    }),
                },
            }
        }
    });
    join_all(tasks).await
}

/// What `import` reads of a database: the catalogs of every schema but pgconverge's own,
/// and the objects there that the config cannot describe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseSnapshot {
    pub catalog: NodeCatalog,
    /// Sorted.
    pub outside: Vec<OutsideObject>,
}

/// Connects to `node` and reads its whole database for `import`.
pub async fn read_database(
    node: &NodeConfig,
    password: Option<&Secret>,
) -> Result<DatabaseSnapshot, NodeError> {
    let client = connect(node, password).await?;
    let named = |error| NodeError::Introspect {
        node: node.name.clone(),
        error,
    };
    let rows = query(&client, "schemas", SCHEMAS_SQL, &[])
        .await
        .map_err(named)?;
    let schemas: Vec<String> = decode::decode_schemas(&rows)
        .map_err(named)?
        .into_iter()
        .filter(|s| s != INTERNAL_SCHEMA)
        .collect();
    let scope = IntrospectScope {
        schemas: schemas.clone(),
        expected_function_fingerprints: BTreeMap::new(),
    };
    let catalog = introspect(&client, &scope).await.map_err(named)?;
    client
        .batch_execute("BEGIN READ ONLY; SET LOCAL search_path = ''")
        .await
        .map_err(|e| named(failed("objects outside the model")(e)))?;
    let params: [(&(dyn ToSql + Sync), Type); 1] = [(&schemas, Type::TEXT_ARRAY)];
    let rows = query(
        &client,
        "objects outside the model",
        OUTSIDE_OBJECTS_SQL,
        &params,
    )
    .await;
    let end = client.batch_execute("COMMIT").await;
    let rows = rows.map_err(named)?;
    end.map_err(|e| named(failed("objects outside the model")(e)))?;
    let mut outside = decode::decode_outside_objects(&rows).map_err(named)?;
    outside.sort();
    Ok(DatabaseSnapshot { catalog, outside })
}

/// Reads the catalog snapshot of the database `client` is connected to.
///
/// Runs inside `BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY` so all queries see the same
/// catalog state; the client must not be inside a transaction of its own. The transaction
/// sets an empty `search_path`, so every name that `pg_get_constraintdef`, `pg_get_indexdef`,
/// `pg_get_expr` and `format_type` print outside `pg_catalog` is schema-qualified: the same
/// objects print the same on every node, whatever its database or role settings.
pub async fn introspect(
    client: &Client,
    scope: &IntrospectScope,
) -> Result<NodeCatalog, IntrospectError> {
    client
        .batch_execute(
            "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET LOCAL search_path = ''",
        )
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
        let rows = query(client, "server", SERVER_SQL, &[]).await?;
        let server = decode::decode_server(&rows)?;
        // Said before any query that needs a newer catalog (`suborigin`) can fail less clearly.
        if server.version_num < OLDEST_SUPPORTED_VERSION_NUM {
            return Err(inconsistent(
                "the catalogs",
                format!(
                    "PostgreSQL {} is not supported: pgconverge needs 16 or newer \
                     (subscriptions with origin = none)",
                    server.version
                ),
            ));
        }
        let sql = if server.can_read_conninfo {
            SUBSCRIPTIONS_SQL
        } else {
            SUBSCRIPTIONS_WITHOUT_CONNINFO_SQL
        };
        let rows = query(client, "subscriptions", sql, &[]).await?;
        Ok::<_, IntrospectError>((server, rows))
    };
    let (
        (server, subscription_rows),
        setting_rows,
        schema_rows,
        table_rows,
        constraint_rows,
        index_rows,
        opclass_rows,
        trigger_rows,
        functions,
        publication_rows,
        slot_rows,
        key_sequence_rows,
        partition_rows,
        type_rows,
        outside,
    ) = futures_util::try_join!(
        server_and_subscriptions,
        query(client, "settings", SETTINGS_SQL, &settings_params),
        query(client, "schemas", SCHEMAS_SQL, &[]),
        query(client, "tables", TABLES_SQL, &scope_params),
        query(client, "constraints", CONSTRAINTS_SQL, &scope_params),
        query(client, "indexes", INDEXES_SQL, &scope_params),
        query(client, "operator classes", DEFAULT_BTREE_OPCLASSES_SQL, &[]),
        query(client, "triggers", TRIGGERS_SQL, &scope_params),
        read_functions(
            client,
            &scope.schemas,
            &scope.expected_function_fingerprints
        ),
        query(client, "publications", PUBLICATIONS_SQL, &[]),
        query(client, "replication slots", SLOTS_SQL, &[]),
        query(client, "key sequences", KEY_SEQUENCES_SQL, &scope_params),
        query(client, "partitions", PARTITIONS_SQL, &scope_params),
        query(client, "types", TYPES_SQL, &scope_params),
        outside::read_outside(client, &scope.schemas),
    )?;

    let (mut tables, table_columns) = tables::decode_tables(&table_rows)?;
    tables::attach_constraints(&mut tables, &table_columns, &constraint_rows)?;
    let default_opclasses = decode::decode_default_opclasses(&opclass_rows)?;
    let indexes = tables::decode_indexes(&table_columns, &default_opclasses, &index_rows)?;
    // One more round trip, only for indexes this crate cannot print itself.
    let definition_rows = if indexes.needing_server_definition.is_empty() {
        Vec::new()
    } else {
        let oids: [(&(dyn ToSql + Sync), Type); 1] =
            [(&indexes.needing_server_definition, Type::OID_ARRAY)];
        query(client, "index definitions", INDEX_DEFINITIONS_SQL, &oids).await?
    };
    tables::attach_indexes(&mut tables, indexes.valid, &definition_rows)?;
    tables::attach_invalid_indexes(&mut tables, indexes.invalid);
    tables::attach_triggers(&mut tables, &trigger_rows)?;
    partitions::attach_partitions(&mut tables, &partition_rows)?;
    let membership = if tables.contains_key(&QualifiedName::new(INTERNAL_SCHEMA, MEMBERSHIP_TABLE))
    {
        let rows = query(client, "membership", MEMBERSHIP_SQL, &[]).await?;
        decode_membership(&rows)?
    } else {
        None
    };
    if membership.is_none() {
        read_which_hold_rows(client, &mut tables).await?;
    }
    tables::attach_key_sequences(&mut tables, &key_sequence_rows)?;
    let key_slots = if tables.contains_key(&QualifiedName::new(INTERNAL_SCHEMA, KEY_SLOT_TABLE)) {
        let rows = query(client, "key slots", KEY_SLOTS_SQL, &[]).await?;
        decode::decode_key_slots(&rows)?
    } else {
        BTreeMap::new()
    };
    read_key_usage(client, &mut tables, &key_slots).await?;
    let sql_files = if tables.contains_key(&QualifiedName::new(INTERNAL_SCHEMA, SQL_FILES_TABLE)) {
        let sql = format!(
            "SELECT name, sha256 FROM {}",
            quote_qualified(INTERNAL_SCHEMA, SQL_FILES_TABLE)
        );
        let rows = query(client, "SQL files", &sql, &[]).await?;
        decode::decode_pairs(&rows, "SQL files")?
    } else {
        BTreeMap::new()
    };

    Ok(NodeCatalog {
        server_version_num: server.version_num,
        server_version: server.version,
        settings: decode::decode_pairs(&setting_rows, "settings")?,
        database_settings: server.database_settings,
        role: server.role,
        schemas: decode::decode_schemas(&schema_rows)?,
        tables,
        types: decode::decode_types(&type_rows)?,
        functions,
        publications: decode::decode_publications(&publication_rows)?,
        subscriptions: decode::decode_subscriptions(&subscription_rows)?,
        slots: decode::decode_slots(&slot_rows)?,
        membership,
        key_slots,
        outside,
        sql_files,
    })
}

/// For every key sequence, the value it hands out next and the greatest value its column
/// holds in the block of each slot the register knows: a node's sequence must start above
/// every value of its block on any node. One pipelined query per key column.
async fn read_key_usage(
    client: &Client,
    tables: &mut BTreeMap<QualifiedName, TableCatalog>,
    key_slots: &BTreeMap<String, i64>,
) -> Result<(), IntrospectError> {
    const WHAT: &str = "key sequence usage";
    let mut probes = Vec::new();
    for (name, table) in tables.iter() {
        for (k, sequence) in table.key_sequences.iter().enumerate() {
            let width = table
                .column(&sequence.column)
                .and_then(|c| KeyWidth::of_type(&c.data_type));
            let (mut slots, mut firsts, mut lasts) = (Vec::new(), Vec::new(), Vec::new());
            for slot in key_slots.values() {
                if let Some(block) = width.and_then(|w| w.block(*slot)) {
                    slots.push(*slot);
                    firsts.push(block.first);
                    lasts.push(block.last);
                }
            }
            let sql = key_usage_sql(
                &quote_qualified(&sequence.sequence.schema, &sequence.sequence.name),
                &quote_qualified(&name.schema, &name.name),
                &quote_ident(&sequence.column),
            );
            probes.push((name.clone(), k, sql, [slots, firsts, lasts]));
        }
    }
    let results = futures_util::future::try_join_all(probes.iter().map(
        |(_, _, sql, [slots, firsts, lasts])| async move {
            let params: [(&(dyn ToSql + Sync), Type); 3] = [
                (slots, Type::INT8_ARRAY),
                (firsts, Type::INT8_ARRAY),
                (lasts, Type::INT8_ARRAY),
            ];
            client.query_typed(sql, &params).await.map_err(failed(WHAT))
        },
    ))
    .await?;
    for ((name, k, _, _), rows) in probes.iter().zip(results) {
        let Some(sequence) = tables
            .get_mut(name)
            .and_then(|t| t.key_sequences.get_mut(*k))
        else {
            continue;
        };
        for row in &rows {
            let value: Option<i64> = get(row, 1, WHAT)?;
            match (get::<Option<i64>>(row, 0, WHAT)?, value) {
                (None, Some(next)) => sequence.next_value = next,
                (Some(slot), Some(max)) => {
                    sequence.block_maxima.insert(slot, max);
                }
                (_, None) => {}
            }
        }
    }
    Ok(())
}

/// On a node not in the mesh yet, which of its tables (outside pgconverge's schema) hold a
/// row: one query, an `EXISTS` per table, each stopping at the first row it finds. Tables the
/// role may not read are left unknown (`has_rows` stays `None`) rather than failing.
async fn read_which_hold_rows(
    client: &Client,
    tables: &mut BTreeMap<QualifiedName, TableCatalog>,
) -> Result<(), IntrospectError> {
    let candidates: Vec<&QualifiedName> = tables
        .keys()
        .filter(|t| t.schema != INTERNAL_SCHEMA)
        .collect();
    if candidates.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = candidates
        .iter()
        .map(|t| quote_qualified(&t.schema, &t.name))
        .collect();
    let params: [(&(dyn ToSql + Sync), Type); 1] = [(&names, Type::TEXT_ARRAY)];
    let readable_rows = query(client, "readable tables", READABLE_TABLES_SQL, &params).await?;
    let mut user_tables = Vec::new();
    for row in &readable_rows {
        let ordinal: i64 = get(row, 0, "readable tables")?;
        if let Some(t) = usize::try_from(ordinal - 1)
            .ok()
            .and_then(|i| candidates.get(i))
        {
            user_tables.push(*t);
        }
    }
    if user_tables.is_empty() {
        return Ok(());
    }
    let probes: Vec<String> = user_tables
        .iter()
        .enumerate()
        .map(|(i, t)| {
            format!(
                "SELECT {i}::int4 WHERE EXISTS (SELECT FROM {})",
                quote_qualified(&t.schema, &t.name)
            )
        })
        .collect();
    let rows = query(
        client,
        "tables holding rows",
        &probes.join(" UNION ALL "),
        &[],
    )
    .await?;
    let mut holding = vec![false; user_tables.len()];
    for row in &rows {
        let index: i32 = get(row, 0, "tables holding rows")?;
        if let Some(slot) = usize::try_from(index).ok().and_then(|i| holding.get_mut(i)) {
            *slot = true;
        }
    }
    let names: Vec<QualifiedName> = user_tables.into_iter().cloned().collect();
    for (name, holds) in names.iter().zip(holding) {
        if let Some(table) = tables.get_mut(name) {
            table.has_rows = Some(holds);
        }
    }
    Ok(())
}

/// The positions (1-based) of the given quoted table names the session may read.
const READABLE_TABLES_SQL: &str = "
SELECT t.i FROM pg_catalog.unnest($1::text[]) WITH ORDINALITY AS t(name, i)
WHERE pg_catalog.has_table_privilege(t.name, 'SELECT')
ORDER BY t.i";

/// The membership table holds one row, the node's own; an empty table means not joined.
fn decode_membership(rows: &[Row]) -> Result<Option<MembershipCatalog>, IntrospectError> {
    const WHAT: &str = "membership";
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    Ok(Some(MembershipCatalog {
        node: get(row, 0, WHAT)?,
        donor: get(row, 1, WHAT)?,
        joined_at: get(row, 2, WHAT)?,
    }))
}

/// The functions, decoded as their rows arrive: neither all rows nor all bodies twice are
/// ever held, and hashing the bodies overlaps receiving them.
async fn read_functions(
    client: &Client,
    schemas: &Vec<String>,
    expected: &BTreeMap<QualifiedName, String>,
) -> Result<BTreeMap<QualifiedName, FunctionCatalog>, IntrospectError> {
    const WHAT: &str = "functions";
    let mut expected_schemas = Vec::with_capacity(expected.len());
    let mut expected_names = Vec::with_capacity(expected.len());
    let mut expected_fingerprints = Vec::with_capacity(expected.len());
    for (name, fingerprint) in expected {
        expected_schemas.push(name.schema.as_str());
        expected_names.push(name.name.as_str());
        expected_fingerprints.push(fingerprint.as_str());
    }
    let params: [(&(dyn ToSql + Sync), Type); 5] = [
        (schemas, Type::TEXT_ARRAY),
        (&expected_schemas, Type::TEXT_ARRAY),
        (&expected_names, Type::TEXT_ARRAY),
        (&expected_fingerprints, Type::TEXT_ARRAY),
        (&FUNCTION_COMMENT_PREFIX, Type::TEXT),
    ];
    let params = params
        .iter()
        .map(|(value, ty)| (*value as &dyn ToSql, ty.clone()));
    let rows = client
        .query_typed_raw(FUNCTIONS_SQL, params)
        .await
        .map_err(failed(WHAT))?;
    let mut rows = std::pin::pin!(rows);
    let mut decoder = decode::FunctionDecoder::default();
    while let Some(row) = rows.try_next().await.map_err(failed(WHAT))? {
        decoder.add(&row)?;
    }
    Ok(decoder.finish())
}

pub(crate) async fn query(
    client: &Client,
    what: &'static str,
    sql: &str,
    params: &[(&(dyn ToSql + Sync), Type)],
) -> Result<Vec<Row>, IntrospectError> {
    client.query_typed(sql, params).await.map_err(failed(what))
}

/// Reads column `index` of `row`, naming the object kind if the value has an unexpected type.
pub(crate) fn get<'a, T: tokio_postgres::types::FromSql<'a>>(
    row: &'a Row,
    index: usize,
    what: &'static str,
) -> Result<T, IntrospectError> {
    row.try_get(index).map_err(failed(what))
}

/// An error that did not come from a failing query: rows that contradict each other (which
/// one snapshot should never produce) or a server too old to read.
pub(super) fn inconsistent(what: &'static str, message: String) -> IntrospectError {
    IntrospectError {
        what,
        error: QueryError {
            sqlstate: None,
            message,
            detail: None,
            hint: None,
        },
    }
}
