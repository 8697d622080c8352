//! Turns the rows of the server-wide queries (server, settings, schemas, functions,
//! publications, subscriptions, slots) into their snapshot types, sorted.

use std::collections::{BTreeMap, HashMap};

use pgconverge_model::catalog::{
    CheckCatalog, DomainCatalog, FunctionCatalog, OutsideObject, PublicationCatalog, QualifiedName,
    RoleInfo, SlotCatalog, SubscriptionCatalog, TypeCatalog,
};
use pgconverge_model::naming::FUNCTION_COMMENT_PREFIX;
use pgconverge_sql::redact_conninfo;
use sha2::{Digest, Sha256};
use tokio_postgres::Row;

use super::{get, inconsistent, IntrospectError};

pub(super) struct ServerInfo {
    pub version_num: u32,
    pub version: String,
    pub role: RoleInfo,
    pub can_read_conninfo: bool,
    pub database_settings: BTreeMap<String, String>,
}

pub(super) fn decode_server(rows: &[Row]) -> Result<ServerInfo, IntrospectError> {
    const WHAT: &str = "server";
    let Some(row) = rows.first() else {
        return Err(inconsistent(
            WHAT,
            "the current role is not in pg_roles".to_string(),
        ));
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

pub(super) fn decode_pairs(
    rows: &[Row],
    what: &'static str,
) -> Result<BTreeMap<String, String>, IntrospectError> {
    rows.iter()
        .map(|row| Ok((get(row, 0, what)?, get(row, 1, what)?)))
        .collect()
}

pub(super) fn decode_schemas(rows: &[Row]) -> Result<Vec<String>, IntrospectError> {
    let mut schemas = rows
        .iter()
        .map(|row| get(row, 0, "schemas"))
        .collect::<Result<Vec<String>, _>>()?;
    schemas.sort();
    Ok(schemas)
}

/// The functions read so far, added row by row as they arrive (the functions query carries
/// every body, most of the bytes introspection receives: each row is dropped once read).
#[derive(Default)]
pub(super) struct FunctionDecoder {
    functions: BTreeMap<QualifiedName, FunctionCatalog>,
}

impl FunctionDecoder {
    /// Overloads share a key; the one with the greatest identity arguments is kept, so the
    /// pick does not depend on row order. The definition is the body as stored (`prosrc`),
    /// when the server sent it.
    pub(super) fn add(&mut self, row: &Row) -> Result<(), IntrospectError> {
        const WHAT: &str = "functions";
        let name = QualifiedName::new(get::<String>(row, 0, WHAT)?, get::<String>(row, 1, WHAT)?);
        let identity_arguments: String = get(row, 3, WHAT)?;
        if self
            .functions
            .get(&name)
            .is_some_and(|kept| kept.identity_arguments >= identity_arguments)
        {
            return Ok(());
        }
        let definition: Option<String> = get(row, 2, WHAT)?;
        let comment: Option<String> = get(row, 4, WHAT)?;
        let xmin: String = get(row, 5, WHAT)?;
        let fingerprint = comment
            .as_deref()
            .and_then(|comment| recorded_fingerprint(comment, &xmin))
            .unwrap_or_default();
        // Without the body (its fingerprint vouched for it) there is nothing to hash.
        let (definition, body_sha256) = match definition {
            Some(body) => {
                let sha256 = sha256_hex(&body);
                (body, sha256)
            }
            None => (String::new(), String::new()),
        };
        let function = FunctionCatalog {
            definition,
            body_sha256,
            identity_arguments,
            fingerprint,
        };
        self.functions.insert(name, function);
        Ok(())
    }

    pub(super) fn finish(self) -> BTreeMap<QualifiedName, FunctionCatalog> {
        self.functions
    }
}

/// The fingerprint in a comment `pgconverge:<fingerprint>:<xmin>`, if the comment is one and
/// names the live catalog row (a function replaced since no longer counts as generated).
fn recorded_fingerprint(comment: &str, xmin: &str) -> Option<String> {
    let rest = comment.strip_prefix(FUNCTION_COMMENT_PREFIX)?;
    let (fingerprint, recorded_xmin) = rest.split_once(':')?;
    (recorded_xmin == xmin && !fingerprint.is_empty()).then(|| fingerprint.to_string())
}

pub(super) fn decode_publications(
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
pub(super) fn decode_subscriptions(
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

pub(super) fn decode_slots(rows: &[Row]) -> Result<BTreeMap<String, SlotCatalog>, IntrospectError> {
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
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(text.as_bytes());
    let mut hex = String::with_capacity(digest.len() * 2);
    for byte in digest {
        hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
        hex.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    hex
}

/// Default btree operator classes (`oid` → `opcintype`), for printing plain index definitions.
pub(super) fn decode_default_opclasses(rows: &[Row]) -> Result<HashMap<u32, u32>, IntrospectError> {
    const WHAT: &str = "operator classes";
    rows.iter()
        .map(|row| Ok((get(row, 0, WHAT)?, get(row, 1, WHAT)?)))
        .collect()
}

/// The key slot register: node name → slot.
pub(super) fn decode_key_slots(rows: &[Row]) -> Result<BTreeMap<String, i64>, IntrospectError> {
    const WHAT: &str = "key slots";
    rows.iter()
        .map(|row| Ok((get(row, 0, WHAT)?, get(row, 1, WHAT)?)))
        .collect()
}

/// Enum and domain types by name, domain checks sorted by name.
pub(super) fn decode_types(
    rows: &[Row],
) -> Result<BTreeMap<QualifiedName, TypeCatalog>, IntrospectError> {
    const WHAT: &str = "types";
    rows.iter()
        .map(|row| {
            let name =
                QualifiedName::new(get::<String>(row, 0, WHAT)?, get::<String>(row, 1, WHAT)?);
            let kind: String = get(row, 2, WHAT)?;
            let ty = if kind == "e" {
                TypeCatalog::Enum {
                    labels: get(row, 3, WHAT)?,
                }
            } else {
                let names: Vec<String> = get(row, 7, WHAT)?;
                let definitions: Vec<String> = get(row, 8, WHAT)?;
                let mut checks: Vec<CheckCatalog> = names
                    .into_iter()
                    .zip(definitions)
                    .map(|(name, definition)| CheckCatalog { name, definition })
                    .collect();
                checks.sort_by(|a, b| a.name.cmp(&b.name));
                TypeCatalog::Domain(DomainCatalog {
                    base_type: get(row, 4, WHAT)?,
                    not_null: get(row, 5, WHAT)?,
                    default: get(row, 6, WHAT)?,
                    checks,
                })
            };
            Ok((name, ty))
        })
        .collect()
}

/// Objects outside the model, as (kind, schema, name, detail) rows.
pub(super) fn decode_outside_objects(rows: &[Row]) -> Result<Vec<OutsideObject>, IntrospectError> {
    const WHAT: &str = "objects outside the model";
    rows.iter()
        .map(|row| {
            Ok(OutsideObject {
                kind: get(row, 0, WHAT)?,
                schema: get(row, 1, WHAT)?,
                name: get(row, 2, WHAT)?,
                detail: get::<Option<String>>(row, 3, WHAT)?.unwrap_or_default(),
            })
        })
        .collect()
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
}
