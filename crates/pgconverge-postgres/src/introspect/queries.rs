//! The catalog queries, one per object kind.
//!
//! Every catalog name is schema-qualified so a hostile search_path cannot shadow it, and every
//! `name`/`"char"` column is cast to text so it decodes as a Rust String. `$1` is the scope's
//! schemas as `text[]`.

pub(super) const SERVER_SQL: &str = "
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

pub(super) const SETTINGS_SQL: &str = "
SELECT name::text, setting FROM pg_catalog.pg_settings WHERE name = ANY($1)";

pub(super) const SCHEMAS_SQL: &str = "
SELECT nspname::text FROM pg_catalog.pg_namespace
WHERE nspname !~ '^pg_' AND nspname <> 'information_schema'";

/// One row per table, its columns as parallel arrays. The aggregates have no ORDER BY (eleven
/// sorts per table cost more than the scan): all of them see the rows in the same order, and
/// the columns are put in `attnum` order in Rust.
pub(super) const TABLES_SQL: &str = "
SELECT n.nspname::text, c.relname::text, c.relreplident::text,
       CASE WHEN c.relkind = 'p' THEN parts.tuples ELSE c.reltuples::float8 END,
       cols.names, cols.types, cols.not_nulls, cols.defaults, cols.attnums,
       cols.quoted_names, cols.type_oids, cols.collations, c.relkind = 'p',
       CASE WHEN c.relkind = 'p' THEN parts.pages ELSE c.relpages::int8 END
           * pg_catalog.current_setting('block_size')::int8,
       cols.identities, cols.generated,
       CASE WHEN c.relkind = 'p' THEN pg_catalog.pg_get_partkeydef(c.oid) END,
       CASE WHEN c.relreplident = 'i' THEN (
           SELECT ic.relname::text FROM pg_catalog.pg_index x
           JOIN pg_catalog.pg_class ic ON ic.oid = x.indexrelid
           WHERE x.indrelid = c.oid AND x.indisreplident) END
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
-- A partitioned table holds no rows itself: its estimates are its partitions'.
LEFT JOIN LATERAL (
    SELECT CASE WHEN pg_catalog.bool_and(l.reltuples < 0) THEN -1
                ELSE COALESCE(pg_catalog.sum(GREATEST(l.reltuples, 0)), 0) END::float8 AS tuples,
           COALESCE(pg_catalog.sum(l.relpages), 0)::int8 AS pages
    FROM pg_catalog.pg_partition_tree(c.oid) t
    JOIN pg_catalog.pg_class l ON l.oid = t.relid
    WHERE c.relkind = 'p' AND t.isleaf
) parts ON true
LEFT JOIN LATERAL (
    SELECT pg_catalog.array_agg(a.attnum) AS attnums,
           pg_catalog.array_agg(a.attname::text) AS names,
           pg_catalog.array_agg(pg_catalog.quote_ident(a.attname))
               AS quoted_names,
           pg_catalog.array_agg(a.atttypid) AS type_oids,
           pg_catalog.array_agg(a.attcollation) AS collations,
           pg_catalog.array_agg(pg_catalog.format_type(a.atttypid, a.atttypmod)) AS types,
           pg_catalog.array_agg(a.attnotnull) AS not_nulls,
           pg_catalog.array_agg(a.attidentity::text) AS identities,
           -- A generated column's expression is not a default. A default cannot refer to
           -- a column, so it is printed without the table as context (relid 0): naming the
           -- table would open every table, the main cost of this query on large schemas.
           pg_catalog.array_agg(CASE WHEN a.attgenerated = ''
                                     THEN pg_catalog.pg_get_expr(d.adbin, 0) END) AS defaults,
           -- A stored generated column's expression names columns: only it needs the table.
           pg_catalog.array_agg(CASE WHEN a.attgenerated = 's'
                                     THEN pg_catalog.pg_get_expr(d.adbin, a.attrelid) END)
               AS generated
    FROM pg_catalog.pg_attribute a
    LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
) cols ON true
WHERE n.nspname = ANY($1) AND c.relkind IN ('r', 'p') AND NOT c.relispartition";

/// Each partition of a partitioned table in scope (partitions are parts of their table, not
/// tables of the snapshot): its bound as PostgreSQL prints it, whether it is partitioned
/// itself, and its own triggers (not the clones of its table's row triggers).
pub(super) const PARTITIONS_SQL: &str = "
SELECT pn.nspname::text, p.relname::text, n.nspname::text, c.relname::text,
       pg_catalog.pg_get_expr(c.relpartbound, c.oid), c.relkind = 'p',
       ARRAY(SELECT t.tgname::text FROM pg_catalog.pg_trigger t
             WHERE t.tgrelid = c.oid AND NOT t.tgisinternal AND t.tgparentid = 0
             ORDER BY 1)
FROM pg_catalog.pg_inherits i
JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_class p ON p.oid = i.inhparent
JOIN pg_catalog.pg_namespace pn ON pn.oid = p.relnamespace
WHERE pn.nspname = ANY($1) AND c.relispartition AND p.relkind = 'p' AND NOT p.relispartition";

/// Key columns as attribute numbers, named from the tables' columns in Rust: resolving them in
/// SQL, one subquery per constraint, cost more than all the rest of the query. Columns of a
/// referenced table outside the scope are the exception, resolved here.
///
/// `pg_get_constraintdef` is called only for constraints whose text is not plain (see
/// `tables::plain_constraint_definition`): on a cold session it is most of this query's cost.
/// Plain means a primary key, unique or foreign key constraint backed by a btree index (not a
/// temporal key), not deferrable, validated (PostgreSQL 18's NOT ENFORCED is never validated);
/// a key without INCLUDE or NULLS NOT DISTINCT; a foreign key with MATCH SIMPLE, no column
/// list on its delete action, referencing a table in scope.
/// PostgreSQL 18's not-null constraints (`n`) are read as column attributes instead.
/// Constraints PostgreSQL derives from another (`conparentid`: a foreign key's copy for each
/// partition of the table it references) are parts of that one.
pub(super) const CONSTRAINTS_SQL: &str = "
SELECT n.nspname::text, c.relname::text, k.conname::text, k.contype::text, k.conkey,
       CASE WHEN NOT plain.is_plain THEN pg_catalog.pg_get_constraintdef(k.oid) END,
       fn.nspname::text, fc.relname::text, k.confkey,
       CASE WHEN fn.nspname <> ALL($1) OR fc.relispartition THEN
           ARRAY(SELECT a.attname::text
                 FROM pg_catalog.unnest(k.confkey) WITH ORDINALITY AS u(attnum, ord)
                 JOIN pg_catalog.pg_attribute a
                   ON a.attrelid = k.confrelid AND a.attnum = u.attnum
                 ORDER BY u.ord)
       END,
       k.confupdtype::text, k.confdeltype::text,
       pg_catalog.quote_ident(fn.nspname), pg_catalog.quote_ident(fc.relname),
       k.condeferrable, k.condeferred
FROM pg_catalog.pg_constraint k
JOIN pg_catalog.pg_class c ON c.oid = k.conrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_class fc ON fc.oid = k.confrelid
LEFT JOIN pg_catalog.pg_namespace fn ON fn.oid = fc.relnamespace
LEFT JOIN pg_catalog.pg_index ki ON ki.indexrelid = k.conindid
LEFT JOIN pg_catalog.pg_class kic ON kic.oid = k.conindid
LEFT JOIN pg_catalog.pg_am kam ON kam.oid = kic.relam
CROSS JOIN LATERAL (
    SELECT COALESCE(
        k.contype IN ('p', 'u', 'f') AND kam.amname = 'btree'
        AND NOT k.condeferrable AND NOT k.condeferred AND k.convalidated
        AND CASE WHEN k.contype = 'f'
                 THEN k.confmatchtype = 's' AND k.confdelsetcols IS NULL
                      AND fn.nspname = ANY($1) AND NOT fc.relispartition
                 ELSE ki.indnatts = ki.indnkeyatts AND NOT ki.indnullsnotdistinct
            END,
        false) AS is_plain
) plain
WHERE n.nspname = ANY($1) AND c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND k.conparentid = 0 AND k.contype IN ('p', 'u', 'f', 'c', 'x')";

/// Valid indexes that no primary key, unique or exclusion constraint of the table owns, with
/// the parts the config states (method, keys, INCLUDE, predicate) and, for indexes of another
/// method or with expressions, whether every key has its default operator class (a btree
/// index on columns is checked against `DEFAULT_BTREE_OPCLASSES_SQL` in Rust). (A
/// foreign key also points at an index, on the referenced table: that does not make the index
/// part of a constraint of its own table.) Key attribute numbers (0 for an expression), each
/// expression key as `pg_get_indexdef` prints it, and what deciding whether the definition
/// can be printed without `pg_get_indexdef` needs (see `tables::plain_index_definition`).
pub(super) const INDEXES_SQL: &str = "
SELECT n.nspname::text, c.relname::text, ic.relname::text, i.indisunique,
       i.indkey::int2[], i.indnkeyatts,
       CASE WHEN 0 = ANY(i.indkey) THEN
           ARRAY(SELECT pg_catalog.pg_get_indexdef(i.indexrelid, k, true)
                 FROM pg_catalog.generate_series(1, i.indnkeyatts::int4) AS k
                 ORDER BY k)
       END,
       i.indexrelid,
       pg_catalog.quote_ident(n.nspname), pg_catalog.quote_ident(c.relname),
       pg_catalog.quote_ident(ic.relname), c.relkind::text, am.amname::text,
       i.indclass::oid[], i.indcollation::oid[], i.indoption::int2[],
       i.indexprs IS NULL AND i.indpred IS NULL AND ic.reloptions IS NULL
           AND NOT i.indnullsnotdistinct,
       i.indisvalid,
       CASE WHEN i.indpred IS NOT NULL
            THEN pg_catalog.pg_get_expr(i.indpred, i.indrelid, true) END,
       ic.reloptions IS NOT NULL OR i.indnullsnotdistinct,
       CASE WHEN am.amname <> 'btree' OR 0 = ANY(i.indkey) THEN
           (SELECT pg_catalog.bool_and(oc.opcdefault)
            FROM pg_catalog.unnest(i.indclass::oid[]) AS u(opc)
            JOIN pg_catalog.pg_opclass oc ON oc.oid = u.opc)
       END
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
JOIN pg_catalog.pg_am am ON am.oid = ic.relam
JOIN pg_catalog.pg_class c ON c.oid = i.indrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY($1) AND c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND NOT EXISTS (
      SELECT 1 FROM pg_catalog.pg_constraint k
      WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid
        AND k.contype IN ('p', 'u', 'x'))";

/// Default btree operator classes and the type each is for.
pub(super) const DEFAULT_BTREE_OPCLASSES_SQL: &str = "
SELECT c.oid, c.opcintype
FROM pg_catalog.pg_opclass c
JOIN pg_catalog.pg_am am ON am.oid = c.opcmethod
WHERE c.opcdefault AND am.amname = 'btree'";

/// Definitions of the indexes, by oid in `$1`, that only the server can print.
pub(super) const INDEX_DEFINITIONS_SQL: &str = "
SELECT i.oid, pg_catalog.pg_get_indexdef(i.oid)
FROM pg_catalog.unnest($1::pg_catalog.oid[]) AS i(oid)";

/// `pg_get_triggerdef` is called only for triggers whose text is not plain (see
/// `tables::plain_trigger_definition`): on a cold session it is a third of this query's cost.
/// Plain means a BEFORE or AFTER trigger that is not a constraint trigger, has no transition
/// tables, no WHEN condition, no arguments and no `UPDATE OF` column list, and calls a
/// function outside the `pg_` schemas (which the server always schema-qualifies, as nothing
/// but `pg_catalog` is on the empty search path).
pub(super) const TRIGGERS_SQL: &str = "
SELECT n.nspname::text, c.relname::text, t.tgname::text, pn.nspname::text, p.proname::text,
       t.tgenabled::text,
       CASE WHEN NOT plain.is_plain THEN pg_catalog.pg_get_triggerdef(t.oid) END,
       t.tgtype::int4,
       pg_catalog.quote_ident(t.tgname), pg_catalog.quote_ident(n.nspname),
       pg_catalog.quote_ident(c.relname), pg_catalog.quote_ident(pn.nspname),
       pg_catalog.quote_ident(p.proname)
FROM pg_catalog.pg_trigger t
JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_proc p ON p.oid = t.tgfoid
JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace
CROSS JOIN LATERAL (
    SELECT t.tgconstraint = 0 AND t.tgqual IS NULL
           AND t.tgoldtable IS NULL AND t.tgnewtable IS NULL
           AND t.tgnargs = 0 AND pg_catalog.cardinality(t.tgattr::pg_catalog.int2[]) = 0
           AND (t.tgtype::int4 & 64) = 0
           AND pn.nspname !~ '^pg_' AS is_plain
) plain
WHERE NOT t.tgisinternal AND n.nspname = ANY($1) AND c.relkind IN ('r', 'p')
  AND NOT c.relispartition";

/// Plain functions only: procedures, aggregates and window functions are not pgconverge's.
/// Functions owned by an extension are the extension's. The body (as stored, `prosrc`) is
/// not read when the function carries the fingerprint expected for it (`$2`–`$4`: schema,
/// name and fingerprint arrays; `$5` the comment prefix) in a comment naming the `xmin` of
/// its live catalog row: any
/// replacement since would have written a new row. A no-op plan of a large schema then reads
/// no bodies at all (they are tens of megabytes, and detoasting them is most of the work).
/// A function without any arguments skips `pg_get_function_identity_arguments`, a catalog
/// lookup per function (one with only OUT arguments has `pronargs = 0` too, but the server
/// lists those).
pub(super) const FUNCTIONS_SQL: &str = "
SELECT n.nspname::text, p.proname::text,
       CASE WHEN d.description = $5 || e.fingerprint || ':' || p.xmin::text
            THEN NULL ELSE p.prosrc END,
       CASE WHEN p.pronargs = 0 AND p.proallargtypes IS NULL THEN ''
            ELSE pg_catalog.pg_get_function_identity_arguments(p.oid) END,
       d.description, p.xmin::text
FROM pg_catalog.pg_proc p
JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
LEFT JOIN pg_catalog.pg_description d
       ON d.objoid = p.oid AND d.classoid = 'pg_catalog.pg_proc'::pg_catalog.regclass
      AND d.objsubid = 0
LEFT JOIN ROWS FROM (pg_catalog.unnest($2::text[]), pg_catalog.unnest($3::text[]),
                     pg_catalog.unnest($4::text[])) AS e(schema_name, function_name, fingerprint)
       ON e.schema_name = n.nspname AND e.function_name = p.proname
WHERE n.nspname = ANY($1) AND p.prokind = 'f'
  AND NOT EXISTS (
      SELECT 1 FROM pg_catalog.pg_depend d
      WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.objid = p.oid
        AND d.deptype = 'e')";

/// Tables listed explicitly (`pg_publication_rel`). Schema membership (`FOR TABLES IN
/// SCHEMA`, `pg_publication_namespace`), row filters and column lists have no place in
/// `PublicationCatalog` and are not read: pgconverge creates table-list publications only.
pub(super) const PUBLICATIONS_SQL: &str = "
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
pub(super) const SUBSCRIPTIONS_SQL: &str = "
SELECT s.subname::text, s.subconninfo, s.subpublications, s.subenabled, s.suborigin,
       s.subslotname::text, pg_catalog.pg_get_userbyid(s.subowner)::text
FROM pg_catalog.pg_subscription s
JOIN pg_catalog.pg_database d ON d.oid = s.subdbid
WHERE d.datname = pg_catalog.current_database()";

pub(super) const SUBSCRIPTIONS_WITHOUT_CONNINFO_SQL: &str = "
SELECT s.subname::text, NULL::text, s.subpublications, s.subenabled, s.suborigin,
       s.subslotname::text, pg_catalog.pg_get_userbyid(s.subowner)::text
FROM pg_catalog.pg_subscription s
JOIN pg_catalog.pg_database d ON d.oid = s.subdbid
WHERE d.datname = pg_catalog.current_database()";

pub(super) const SLOTS_SQL: &str = "
SELECT slot_name::text, plugin::text, slot_type, database::text, active, wal_status,
       confirmed_flush_lsn::text
FROM pg_catalog.pg_replication_slots";

/// The node's membership record, read only when `_pgconverge.membership` exists.
pub(super) const MEMBERSHIP_SQL: &str = "
SELECT node, donor, joined_at::text FROM _pgconverge.membership ORDER BY node";

/// Sequences feeding a column of a table in scope: owned by it (serial, identity) or called
/// by its default (`nextval`), with their bounds; quoted names for reading their position.
pub(super) const KEY_SEQUENCES_SQL: &str = "
WITH feeds AS (
    SELECT dep.refobjid AS relid, dep.refobjsubid::int2 AS attnum, dep.objid AS seqid,
           true AS owned
    FROM pg_catalog.pg_depend dep
    WHERE dep.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
      AND dep.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
      AND dep.refobjsubid > 0 AND dep.deptype IN ('a', 'i')
    UNION ALL
    SELECT d.adrelid, d.adnum, dep.refobjid, false
    FROM pg_catalog.pg_attrdef d
    JOIN pg_catalog.pg_depend dep
      ON dep.classid = 'pg_catalog.pg_attrdef'::pg_catalog.regclass AND dep.objid = d.oid
     AND dep.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
)
SELECT n.nspname::text, c.relname::text, a.attname::text, sn.nspname::text, s.relname::text,
       q.seqmin, q.seqmax, q.seqstart, q.seqincrement, pg_catalog.bool_or(f.owned)
FROM feeds f
JOIN pg_catalog.pg_class s ON s.oid = f.seqid AND s.relkind = 'S'
JOIN pg_catalog.pg_sequence q ON q.seqrelid = s.oid
JOIN pg_catalog.pg_namespace sn ON sn.oid = s.relnamespace
JOIN pg_catalog.pg_class c ON c.oid = f.relid AND c.relkind IN ('r', 'p')
                           AND NOT c.relispartition
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = f.attnum
WHERE n.nspname = ANY($1)
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9";

/// Enum and domain types in scope (not an extension's): an enum's labels in sort order; a
/// domain's base type, NOT NULL, default and CHECK constraints (PostgreSQL 17's domain
/// not-null constraints, `n`, are read as `typnotnull`).
pub(super) const TYPES_SQL: &str = "
SELECT n.nspname::text, t.typname::text, t.typtype::text,
       ARRAY(SELECT e.enumlabel::text FROM pg_catalog.pg_enum e
             WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder),
       pg_catalog.format_type(t.typbasetype, t.typtypmod), t.typnotnull,
       pg_catalog.pg_get_expr(t.typdefaultbin, 0),
       ARRAY(SELECT k.conname::text FROM pg_catalog.pg_constraint k
             WHERE k.contypid = t.oid AND k.contype = 'c' ORDER BY k.oid),
       ARRAY(SELECT pg_catalog.pg_get_constraintdef(k.oid) FROM pg_catalog.pg_constraint k
             WHERE k.contypid = t.oid AND k.contype = 'c' ORDER BY k.oid)
FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname = ANY($1) AND t.typtype IN ('e', 'd')
  AND NOT EXISTS (SELECT FROM pg_catalog.pg_depend d
                  WHERE d.classid = 'pg_catalog.pg_type'::pg_catalog.regclass
                    AND d.objid = t.oid AND d.deptype = 'e')";

pub(super) const KEY_SLOTS_SQL: &str = "
SELECT node, slot FROM _pgconverge.key_slot ORDER BY node";

/// The value `sequence`'s next `nextval` returns (its first row), then the greatest value
/// of `column` in each block `[$2[i], $3[i]]` of slot `$1[i]`, each an index probe;
/// `{sequence}`, `{table}` and `{column}` are quoted identifiers.
pub(super) fn key_usage_sql(sequence: &str, table: &str, column: &str) -> String {
    format!(
        "SELECT NULL::int8, CASE WHEN q.is_called \
             THEN LEAST(q.last_value::numeric + q.increment, \
                                   9223372036854775807)::int8 \
             ELSE q.last_value END \
         FROM (SELECT s.last_value, s.is_called, p.seqincrement AS increment \
               FROM {sequence} AS s, pg_catalog.pg_sequence AS p \
               WHERE p.seqrelid = {sequence_literal}::pg_catalog.regclass) AS q \
         UNION ALL \
         SELECT s.slot, (SELECT pg_catalog.max(t.{column})::int8 FROM {table} AS t \
                         WHERE t.{column} BETWEEN s.first AND s.last) \
         FROM ROWS FROM (pg_catalog.unnest($1::int8[]), pg_catalog.unnest($2::int8[]), \
                         pg_catalog.unnest($3::int8[])) AS s(slot, first, last)",
        sequence_literal = pgconverge_sql::quote_literal(sequence)
    )
}

/// Objects in the scope's schemas that the config cannot describe, one row each as (kind,
/// schema, name, detail), for `import` to list: views, routines, policies, range and
/// composite types (enums and domains are in the model), free sequences, extensions, and the
/// facts that keep a table out of the config (a virtual generated column, a table an
/// extension owns). Partitions are read with their tables.
pub(super) const OUTSIDE_OBJECTS_SQL: &str = "
WITH ext AS (
    SELECT d.classid, d.objid, e.extname
    FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid
    WHERE d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND d.deptype = 'e'
)
SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view'
                      WHEN 'f' THEN 'foreign table' ELSE 'sequence' END,
       n.nspname::text, c.relname::text, ''
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY($1) AND c.relkind IN ('v', 'm', 'f', 'S')
  AND NOT EXISTS (SELECT FROM ext WHERE ext.classid = 'pg_catalog.pg_class'::pg_catalog.regclass
                                      AND ext.objid = c.oid)
  AND NOT (c.relkind = 'S' AND EXISTS (
      SELECT FROM pg_catalog.pg_depend d
      WHERE d.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND d.objid = c.oid
        AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
        AND d.refobjsubid > 0 AND d.deptype IN ('a', 'i')))
UNION ALL
SELECT 'generated column', n.nspname::text, c.relname::text, a.attname::text
FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY($1) AND c.relkind IN ('r', 'p') AND a.attnum > 0
  AND NOT a.attisdropped AND a.attgenerated NOT IN ('', 's')
UNION ALL
SELECT 'extension table', n.nspname::text, c.relname::text, ext.extname::text
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN ext ON ext.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND ext.objid = c.oid
WHERE n.nspname = ANY($1) AND c.relkind IN ('r', 'p')
UNION ALL
SELECT CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate'
                      WHEN 'w' THEN 'window function' ELSE 'function' END,
       n.nspname::text, p.proname::text,
       pg_catalog.pg_get_function_identity_arguments(p.oid)
FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = ANY($1)
  AND NOT EXISTS (SELECT FROM ext WHERE ext.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass
                                      AND ext.objid = p.oid)
UNION ALL
SELECT 'policy', n.nspname::text, c.relname::text, pol.polname::text
FROM pg_catalog.pg_policy pol JOIN pg_catalog.pg_class c ON c.oid = pol.polrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY($1)
UNION ALL
SELECT CASE t.typtype WHEN 'r' THEN 'range type' WHEN 'm' THEN 'multirange type'
                      ELSE 'composite type' END,
       n.nspname::text, t.typname::text, ''
FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname = ANY($1)
  AND (t.typtype IN ('r', 'm')
       OR (t.typtype = 'c' AND EXISTS (SELECT FROM pg_catalog.pg_class c
                                       WHERE c.oid = t.typrelid AND c.relkind = 'c')))
  AND NOT EXISTS (SELECT FROM ext WHERE ext.classid = 'pg_catalog.pg_type'::pg_catalog.regclass
                                      AND ext.objid = t.oid)
UNION ALL
SELECT 'extension', '', e.extname::text, e.extversion
FROM pg_catalog.pg_extension e WHERE e.extname <> 'plpgsql'";
