//! Objects outside the model, read with their definitions so a joining node's bootstrap can
//! carry them from its donor: routines, views and materialized views, row-level security
//! policies and flags, grants, and the server's roles. Never `_pgconverge`, never an
//! extension's objects, never a function whose comment says pgconverge generated it.
//!
//! Runs inside `read_catalog`'s snapshot, whose empty `search_path` makes every printed
//! definition name its objects with their schema.

use pgconverge_model::catalog::{
    GrantCatalog, OutsideCatalog, PolicyDefinition, QualifiedName, RoutineDefinition, RowSecurity,
    ViewDefinition,
};
use pgconverge_model::naming::{FUNCTION_COMMENT_PREFIX, INTERNAL_SCHEMA};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Row};

use super::{get, query, IntrospectError};

/// Objects an extension owns (`deptype = 'e'`) are the extension's to create.
const NOT_EXTENSION_OWNED: &str = "NOT EXISTS (SELECT FROM pg_catalog.pg_depend e
    WHERE e.classid = $CLASS::pg_catalog.regclass AND e.objid = $OID AND e.deptype = 'e')";

fn not_extension_owned(class: &str, oid: &str) -> String {
    NOT_EXTENSION_OWNED
        .replace("$CLASS", &pgconverge_sql::quote_literal(class))
        .replace("$OID", oid)
}

fn routines_sql() -> String {
    format!(
        "SELECT n.nspname::text, p.proname::text,
       pg_catalog.pg_get_function_identity_arguments(p.oid),
       CASE p.prokind WHEN 'p' THEN 'procedure' ELSE 'function' END,
       pg_catalog.pg_get_functiondef(p.oid)
FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = ANY($1) AND n.nspname <> $2 AND p.prokind IN ('f', 'p')
  AND NOT COALESCE(pg_catalog.starts_with(
          pg_catalog.obj_description(p.oid, 'pg_proc'), $3), false)
  AND {}",
        not_extension_owned("pg_catalog.pg_proc", "p.oid")
    )
}

fn views_sql() -> String {
    format!(
        "SELECT n.nspname::text, c.relname::text, c.relkind = 'm',
       COALESCE(c.reloptions::text[], '{{}}'::text[]), pg_catalog.pg_get_viewdef(c.oid),
       dep.schemas, dep.names,
       ARRAY(SELECT pg_catalog.pg_get_indexdef(i.indexrelid) FROM pg_catalog.pg_index i
             WHERE i.indrelid = c.oid)
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN LATERAL (
    SELECT COALESCE(pg_catalog.array_agg(dn.nspname::text), '{{}}'::text[]) AS schemas,
           COALESCE(pg_catalog.array_agg(dc.relname::text), '{{}}'::text[]) AS names
    FROM (SELECT DISTINCT d.refobjid
          FROM pg_catalog.pg_rewrite r JOIN pg_catalog.pg_depend d
            ON d.classid = 'pg_catalog.pg_rewrite'::pg_catalog.regclass AND d.objid = r.oid
          WHERE r.ev_class = c.oid
            AND d.refclassid = 'pg_catalog.pg_class'::pg_catalog.regclass
            AND d.refobjid <> c.oid) refs
    JOIN pg_catalog.pg_class dc ON dc.oid = refs.refobjid
    JOIN pg_catalog.pg_namespace dn ON dn.oid = dc.relnamespace
) dep
WHERE n.nspname = ANY($1) AND n.nspname <> $2 AND c.relkind IN ('v', 'm') AND {}",
        not_extension_owned("pg_catalog.pg_class", "c.oid")
    )
}

const POLICIES_SQL: &str = "
SELECT n.nspname::text, c.relname::text, pol.polname::text, pol.polpermissive,
       CASE pol.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                       WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
       ARRAY(SELECT r.rolname::text FROM pg_catalog.unnest(pol.polroles) AS u(oid)
             JOIN pg_catalog.pg_roles r ON r.oid = u.oid),
       pg_catalog.pg_get_expr(pol.polqual, pol.polrelid),
       pg_catalog.pg_get_expr(pol.polwithcheck, pol.polrelid)
FROM pg_catalog.pg_policy pol JOIN pg_catalog.pg_class c ON c.oid = pol.polrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY($1) AND n.nspname <> $2";

const ROW_SECURITY_SQL: &str = "
SELECT n.nspname::text, c.relname::text, c.relrowsecurity, c.relforcerowsecurity
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = ANY($1) AND n.nspname <> $2 AND c.relkind IN ('r', 'p')
  AND (c.relrowsecurity OR c.relforcerowsecurity)";

/// Explicit privileges (`aclexplode` of a non-default ACL), the owner's own left out: the
/// owner on another node is whoever creates the object there.
const GRANTS_SQL: &str = "
WITH objects AS (
    SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END AS kind,
           n.nspname::text AS schema, c.relname::text AS name, ''::text AS args,
           c.relacl AS acl, c.relowner AS owner
    FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = ANY($1) AND n.nspname <> $2 AND c.relacl IS NOT NULL
      AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
    UNION ALL
    SELECT 'SCHEMA', '', n.nspname::text, '', n.nspacl, n.nspowner
    FROM pg_catalog.pg_namespace n
    WHERE n.nspname = ANY($1) AND n.nspname <> $2 AND n.nspacl IS NOT NULL
    UNION ALL
    SELECT CASE p.prokind WHEN 'p' THEN 'PROCEDURE' ELSE 'FUNCTION' END,
           n.nspname::text, p.proname::text,
           pg_catalog.pg_get_function_identity_arguments(p.oid), p.proacl, p.proowner
    FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = ANY($1) AND n.nspname <> $2 AND p.proacl IS NOT NULL
      AND p.prokind IN ('f', 'p')
)
SELECT o.kind, o.schema, o.name, o.args, COALESCE(r.rolname::text, ''),
       a.privilege_type::text, a.is_grantable
FROM objects o CROSS JOIN LATERAL pg_catalog.aclexplode(o.acl) a
LEFT JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
WHERE a.grantee <> o.owner";

const ROLES_SQL: &str = "
SELECT rolname::text FROM pg_catalog.pg_roles WHERE rolname !~ '^pg_'";

/// Reads every object outside the model in `schemas`, sorted.
pub(super) async fn read_outside(
    client: &Client,
    schemas: &Vec<String>,
) -> Result<OutsideCatalog, IntrospectError> {
    let internal = INTERNAL_SCHEMA;
    let prefix = FUNCTION_COMMENT_PREFIX;
    let scope: [(&(dyn ToSql + Sync), Type); 2] =
        [(schemas, Type::TEXT_ARRAY), (&internal, Type::TEXT)];
    let routine_params: [(&(dyn ToSql + Sync), Type); 3] = [
        (schemas, Type::TEXT_ARRAY),
        (&internal, Type::TEXT),
        (&prefix, Type::TEXT),
    ];
    let (routines_sql, views_sql) = (routines_sql(), views_sql());
    let (routine_rows, view_rows, policy_rows, security_rows, grant_rows, role_rows) = futures_util::try_join!(
        query(client, "routines", &routines_sql, &routine_params),
        query(client, "views", &views_sql, &scope),
        query(client, "policies", POLICIES_SQL, &scope),
        query(client, "row-level security", ROW_SECURITY_SQL, &scope),
        query(client, "grants", GRANTS_SQL, &scope),
        query(client, "roles", ROLES_SQL, &[]),
    )?;
    let mut outside = OutsideCatalog {
        routines: decode_all(&routine_rows, decode_routine)?,
        views: decode_all(&view_rows, decode_view)?,
        policies: decode_all(&policy_rows, decode_policy)?,
        row_security: decode_all(&security_rows, decode_row_security)?,
        grants: decode_all(&grant_rows, decode_grant)?,
        roles: decode_all(&role_rows, |row| get(row, 0, "roles"))?,
    };
    outside.routines.sort();
    outside.views.sort();
    outside.policies.sort();
    outside.row_security.sort();
    outside.grants.sort();
    outside.roles.sort();
    Ok(outside)
}

fn decode_all<T>(
    rows: &[Row],
    decode: impl Fn(&Row) -> Result<T, IntrospectError>,
) -> Result<Vec<T>, IntrospectError> {
    rows.iter().map(decode).collect()
}

fn decode_routine(row: &Row) -> Result<RoutineDefinition, IntrospectError> {
    const WHAT: &str = "routines";
    Ok(RoutineDefinition {
        name: QualifiedName::new(get::<String>(row, 0, WHAT)?, get::<String>(row, 1, WHAT)?),
        identity_arguments: get(row, 2, WHAT)?,
        kind: get(row, 3, WHAT)?,
        definition: get(row, 4, WHAT)?,
    })
}

fn decode_view(row: &Row) -> Result<ViewDefinition, IntrospectError> {
    const WHAT: &str = "views";
    let schemas: Vec<String> = get(row, 5, WHAT)?;
    let names: Vec<String> = get(row, 6, WHAT)?;
    let mut depends_on: Vec<QualifiedName> = schemas
        .into_iter()
        .zip(names)
        .map(|(s, n)| QualifiedName::new(s, n))
        .collect();
    depends_on.sort();
    let mut indexes: Vec<String> = get(row, 7, WHAT)?;
    indexes.sort();
    Ok(ViewDefinition {
        name: QualifiedName::new(get::<String>(row, 0, WHAT)?, get::<String>(row, 1, WHAT)?),
        materialized: get(row, 2, WHAT)?,
        options: get(row, 3, WHAT)?,
        query: get(row, 4, WHAT)?,
        depends_on,
        indexes,
    })
}

fn decode_policy(row: &Row) -> Result<PolicyDefinition, IntrospectError> {
    const WHAT: &str = "policies";
    let mut roles: Vec<String> = get(row, 5, WHAT)?;
    roles.sort();
    Ok(PolicyDefinition {
        table: QualifiedName::new(get::<String>(row, 0, WHAT)?, get::<String>(row, 1, WHAT)?),
        name: get(row, 2, WHAT)?,
        permissive: get(row, 3, WHAT)?,
        command: get(row, 4, WHAT)?,
        roles,
        using: get(row, 6, WHAT)?,
        with_check: get(row, 7, WHAT)?,
    })
}

fn decode_row_security(row: &Row) -> Result<RowSecurity, IntrospectError> {
    const WHAT: &str = "row-level security";
    Ok(RowSecurity {
        table: QualifiedName::new(get::<String>(row, 0, WHAT)?, get::<String>(row, 1, WHAT)?),
        enabled: get(row, 2, WHAT)?,
        forced: get(row, 3, WHAT)?,
    })
}

fn decode_grant(row: &Row) -> Result<GrantCatalog, IntrospectError> {
    const WHAT: &str = "grants";
    Ok(GrantCatalog {
        object_kind: get(row, 0, WHAT)?,
        name: QualifiedName::new(get::<String>(row, 1, WHAT)?, get::<String>(row, 2, WHAT)?),
        arguments: get(row, 3, WHAT)?,
        grantee: get(row, 4, WHAT)?,
        privilege: get(row, 5, WHAT)?,
        grantable: get(row, 6, WHAT)?,
    })
}
