//! Reading a live database for `import --from`: its catalogs and the objects outside the
//! model. Read-only; the conversion into a config is the model's (`pgconverge_model::import`).

use pgconverge_model::NodeConfig;
use pgconverge_postgres::{read_database, resolve_password, DatabaseSnapshot};
use pgconverge_sql::conninfo_pairs;

use crate::error::{EngineError, NodeFailure};

/// Reads the database `node` describes, its password found as for any node (a password in
/// the node itself comes first when it was given on the command line).
pub async fn read_database_of(node: &NodeConfig) -> Result<DatabaseSnapshot, EngineError> {
    let env = |name: &str| std::env::var(name).ok();
    let password = resolve_password(node, &env).map_err(|source| EngineError::Password {
        node: node.name.clone(),
        source,
    })?;
    read_database(node, password.as_ref())
        .await
        .map_err(|error| EngineError::Unreachable {
            failures: vec![NodeFailure {
                node: node.name.clone(),
                error,
            }],
        })
}

/// The database a connection string of `key=value` pairs describes, as a node named
/// `source` (`host` defaults to `localhost`, `port` to 5432; `dbname` and `user` are
/// needed). Its password, if the string has one, stays in memory.
pub fn node_from_conninfo(conninfo: &str) -> Result<NodeConfig, String> {
    let pairs = conninfo_pairs(conninfo);
    let get = |key: &str| pairs.get(key).cloned();
    let port = match get("port") {
        None => None,
        Some(text) => Some(
            text.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("port {text:?} is not a port number"))?,
        ),
    };
    let missing = |key: &str| format!("the connection string has no {key}");
    Ok(NodeConfig {
        name: "source".into(),
        host: get("host").unwrap_or_else(|| "localhost".into()),
        port,
        peer_host: None,
        peer_port: None,
        db: get("dbname").ok_or_else(|| missing("dbname"))?,
        user: get("user").ok_or_else(|| missing("user"))?,
        password: get("password"),
        password_env: None,
        password_command: None,
        sslmode: get("sslmode"),
        // The connection string's own TLS files, read where pgconverge runs.
        sslrootcert: get("sslrootcert"),
        sslcert: get("sslcert"),
        sslkey: get("sslkey"),
        subscription_tls: None,
        external: true,
        donor: None,
        merge_rows: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_strings_name_the_database_to_read() {
        let node =
            node_from_conninfo("host=127.0.0.1 port=5433 dbname=app user='my user' password=s3")
                .expect("a node");
        assert_eq!((node.host.as_str(), node.port()), ("127.0.0.1", 5433));
        assert_eq!((node.db.as_str(), node.user.as_str()), ("app", "my user"));
        assert_eq!(node.password.as_deref(), Some("s3"));
        assert!(node_from_conninfo("host=h user=u").is_err());
        assert!(node_from_conninfo("dbname=d user=u port=0").is_err());
    }
}
