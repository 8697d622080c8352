//! Objects outside the model that a node's bootstrap carries from its donor: routines, views,
//! row-level security policies and grants, each as PostgreSQL prints its definition. User
//! triggers on tables are read with the tables (`TableCatalog::triggers`).
//!
//! Plain data in sorted lists, so equal catalogs give equal snapshots and fingerprints.

use serde::{Deserialize, Serialize};

use super::QualifiedName;

/// What introspection read outside the model in the configured schemas (never
/// `_pgconverge`, never an extension's objects, never the functions pgconverge generated).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OutsideCatalog {
    pub routines: Vec<RoutineDefinition>,
    pub views: Vec<ViewDefinition>,
    pub policies: Vec<PolicyDefinition>,
    /// Tables with row-level security enabled or forced.
    pub row_security: Vec<RowSecurity>,
    /// Explicit privileges on schemas, relations and routines, the owner's own excepted.
    pub grants: Vec<GrantCatalog>,
    /// Every role of the server outside the `pg_` ones: grants and policies name roles,
    /// which are per server.
    pub roles: Vec<String>,
}

impl OutsideCatalog {
    pub fn is_empty(&self) -> bool {
        self.routines.is_empty()
            && self.views.is_empty()
            && self.policies.is_empty()
            && self.row_security.is_empty()
            && self.grants.is_empty()
            && self.roles.is_empty()
    }
}

/// A function or procedure.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(default)]
pub struct RoutineDefinition {
    pub name: QualifiedName,
    /// As `pg_get_function_identity_arguments` prints them.
    pub identity_arguments: String,
    /// `function` or `procedure`.
    pub kind: String,
    /// `pg_get_functiondef`: a whole `CREATE OR REPLACE` statement, names qualified.
    pub definition: String,
}

/// A view or materialized view.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(default)]
pub struct ViewDefinition {
    pub name: QualifiedName,
    pub materialized: bool,
    /// `reloptions`, e.g. `security_barrier=true`, `check_option=local`.
    pub options: Vec<String>,
    /// `pg_get_viewdef`: the query, names qualified.
    pub query: String,
    /// Relations (tables, views, foreign tables) the query reads, sorted.
    pub depends_on: Vec<QualifiedName>,
    /// A materialized view's indexes, as `pg_get_indexdef` prints them, sorted.
    pub indexes: Vec<String>,
}

/// A row-level security policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(default)]
pub struct PolicyDefinition {
    pub table: QualifiedName,
    pub name: String,
    pub permissive: bool,
    /// `ALL`, `SELECT`, `INSERT`, `UPDATE` or `DELETE`.
    pub command: String,
    /// Role names; empty means `PUBLIC`.
    pub roles: Vec<String>,
    /// `USING` expression, as `pg_get_expr` prints it.
    pub using: Option<String>,
    pub with_check: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(default)]
pub struct RowSecurity {
    pub table: QualifiedName,
    pub enabled: bool,
    pub forced: bool,
}

/// One privilege held by one grantee on one object.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(default)]
pub struct GrantCatalog {
    /// `SCHEMA`, `TABLE` (tables and views), `SEQUENCE`, `FUNCTION` or `PROCEDURE`.
    pub object_kind: String,
    /// For a schema, `name.schema` is empty and `name.name` is the schema.
    pub name: QualifiedName,
    /// A routine's identity arguments; empty otherwise.
    pub arguments: String,
    /// The role; empty for `PUBLIC`.
    pub grantee: String,
    /// `SELECT`, `INSERT`, `USAGE`, `EXECUTE`, …
    pub privilege: String,
    pub grantable: bool,
}
