//! Opens a session to a node: address, credentials, `sslmode` (TLS in `tls.rs`), timeouts,
//! application name.

use std::time::Duration;

use pgconverge_model::naming::SESSION_LOCK_TIMEOUT;
use pgconverge_model::NodeConfig;
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, NoTls};

use crate::credentials::Secret;
use crate::query_error::QueryError;
use crate::tls::{self, ServerCheck};

/// How long connecting (TCP, TLS and authentication together) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// `application_name` of every session, so DBAs can tell pgconverge's sessions apart.
pub const APPLICATION_NAME: &str = "pgconverge";

/// Connecting to a node failed. Shows the node, its address and the server's (or the
/// network's) message; never the password.
#[derive(Debug, Clone, thiserror::Error)]
#[error("cannot connect to node {node} at {address}: {error}")]
pub struct ConnectError {
    pub node: String,
    /// `host:port` as configured.
    pub address: String,
    pub error: QueryError,
}

/// libpq `sslmode` values pgconverge understands. `prefer` and `require` encrypt without
/// verifying the server certificate, exactly as libpq does without a root certificate;
/// `verify-ca` and `verify-full` check it against `sslrootcert`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encryption {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl Encryption {
    fn parse(sslmode: Option<&str>) -> Result<Self, String> {
        match sslmode.unwrap_or("prefer") {
            "disable" => Ok(Encryption::Disable),
            // `allow` tries plain text first in libpq; either order ends with a working
            // session when the server allows both, so it is served as `prefer`.
            "allow" | "prefer" => Ok(Encryption::Prefer),
            "require" => Ok(Encryption::Require),
            "verify-ca" => Ok(Encryption::VerifyCa),
            "verify-full" => Ok(Encryption::VerifyFull),
            other => Err(format!(
                "sslmode `{other}` is not supported (use disable, allow, prefer, require, \
                 verify-ca or verify-full)"
            )),
        }
    }

    /// As libpq: a configured root certificate is used under any mode that encrypts, so
    /// `prefer` and `require` with `sslrootcert` check the chain as `verify-ca` does.
    fn server_check(self, has_root_cert: bool) -> ServerCheck {
        match self {
            Encryption::VerifyFull => ServerCheck::ChainAndName,
            Encryption::VerifyCa => ServerCheck::Chain,
            _ if has_root_cert => ServerCheck::Chain,
            _ => ServerCheck::None,
        }
    }
}

fn plain_error(message: String) -> QueryError {
    QueryError {
        sqlstate: None,
        message,
        detail: None,
        hint: None,
    }
}

/// Connects to `node` as `node.user`, spawns the connection task on the current tokio
/// runtime and returns the client. Fails after [`CONNECT_TIMEOUT`].
pub async fn connect(node: &NodeConfig, password: Option<&Secret>) -> Result<Client, ConnectError> {
    let address = format!("{}:{}", node.host, node.port());
    let fail = |error: QueryError| ConnectError {
        node: node.name.clone(),
        address: address.clone(),
        error,
    };
    let encryption =
        Encryption::parse(node.sslmode.as_deref()).map_err(|message| fail(plain_error(message)))?;

    let mut config = tokio_postgres::Config::new();
    config
        .host(&node.host)
        .port(node.port())
        .dbname(&node.db)
        .user(&node.user)
        .application_name(APPLICATION_NAME)
        .connect_timeout(CONNECT_TIMEOUT)
        .ssl_mode(match encryption {
            Encryption::Disable => SslMode::Disable,
            Encryption::Prefer => SslMode::Prefer,
            // The verifying modes need TLS; the connector does the checking.
            Encryption::Require | Encryption::VerifyCa | Encryption::VerifyFull => SslMode::Require,
        });
    if let Some(password) = password {
        config.password(password.expose());
    }

    let connecting = async {
        if encryption == Encryption::Disable {
            let (client, connection) = config.connect(NoTls).await?;
            spawn_connection(node.name.clone(), connection);
            return Ok(client);
        }
        let check = encryption.server_check(node.sslrootcert.is_some());
        let (tls, note) = tls::connector(node, check).map_err(plain_error)?;
        match config.connect(tls).await {
            Ok((client, connection)) => {
                spawn_connection(node.name.clone(), connection);
                Ok::<_, QueryError>(client)
            }
            // The verifier's words say more than the wrapped TLS error.
            Err(error) => Err(match note.take() {
                Some(reason) => plain_error(format!("TLS: {reason}")),
                None => QueryError::from(error),
            }),
        }
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(error)) => Err(fail(error)),
        Err(_) => Err(fail(QueryError {
            sqlstate: None,
            message: format!("timed out after {} s", CONNECT_TIMEOUT.as_secs()),
            detail: None,
            hint: None,
        })),
    }
}

fn spawn_connection<S, T>(node: String, connection: tokio_postgres::Connection<S, T>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            // The client sees the failure on its next request; this only leaves a trace.
            tracing::debug!(node = %node, error = %QueryError::from(&error), "connection ended");
        }
    });
}

/// Sets the session limits every applying session uses: no statement timeout (index builds
/// and data copies take as long as they take), `lock_timeout = '10s'` so DDL waiting behind
/// a long transaction fails instead of queueing every other session behind it, and
/// `idle_in_transaction_session_timeout = '60s'` so a session abandoned mid-transaction
/// releases its locks.
pub async fn set_session_defaults(client: &Client) -> Result<(), QueryError> {
    client
        .batch_execute(&format!(
            "SET statement_timeout = 0; \
             SET lock_timeout = '{SESSION_LOCK_TIMEOUT}'; \
             SET idle_in_transaction_session_timeout = '60s'"
        ))
        .await
        .map_err(QueryError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_defaults_to_prefer_and_knows_the_verifying_modes() {
        assert_eq!(Encryption::parse(None), Ok(Encryption::Prefer));
        assert_eq!(Encryption::parse(Some("disable")), Ok(Encryption::Disable));
        assert_eq!(Encryption::parse(Some("require")), Ok(Encryption::Require));
        assert_eq!(
            Encryption::parse(Some("verify-full")),
            Ok(Encryption::VerifyFull)
        );
        assert_eq!(
            Encryption::parse(Some("verify-ca")),
            Ok(Encryption::VerifyCa)
        );
        assert!(Encryption::parse(Some("bogus")).is_err());
    }

    #[tokio::test]
    async fn connect_error_names_node_and_address_but_not_the_password() {
        let node = NodeConfig {
            name: "eu1".into(),
            host: "127.0.0.1".into(),
            // Nothing listens on port 1.
            port: Some(1),
            peer_host: None,
            peer_port: None,
            db: "app".into(),
            user: "pgc".into(),
            password: Some("hunter2-in-config".into()),
            password_env: None,
            password_command: None,
            sslmode: Some("disable".into()),
            sslrootcert: None,
            sslcert: None,
            sslkey: None,
            subscription_tls: None,
            external: false,
            donor: None,
            merge_rows: false,
        };
        let secret = Secret::new("hunter2-in-config");
        let error = connect(&node, Some(&secret))
            .await
            .expect_err("nothing listens");
        let text = format!("{error} {error:?}");
        assert!(text.contains("node eu1 at 127.0.0.1:1"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
    }

    #[test]
    fn tls_connector_builds_with_ring() {
        // Proves the ring provider is linked and supports the default protocol versions.
        let node: NodeConfig = serde_json::from_value(serde_json::json!({
            "name": "n1", "host": "127.0.0.1", "db": "app", "user": "pgc"
        }))
        .expect("node");
        assert!(tls::connector(&node, ServerCheck::None).is_ok());
        let missing = tls::connector(&node, ServerCheck::ChainAndName).err();
        assert!(missing.is_some_and(|e| e.contains("sslrootcert")));
    }
}
