//! Opens a session to a node: address, credentials, `sslmode`, timeouts, application name.

use std::sync::Arc;
use std::time::Duration;

use pgconverge_model::naming::SESSION_LOCK_TIMEOUT;
use pgconverge_model::NodeConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_postgres::config::SslMode;
use tokio_postgres::{Client, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::credentials::Secret;
use crate::query_error::QueryError;

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
/// verifying the server certificate, exactly as libpq does without a root certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encryption {
    Disable,
    Prefer,
    Require,
}

impl Encryption {
    fn parse(sslmode: Option<&str>) -> Result<Self, String> {
        match sslmode.unwrap_or("prefer") {
            "disable" => Ok(Encryption::Disable),
            // `allow` tries plain text first in libpq; either order ends with a working
            // session when the server allows both, so it is served as `prefer`.
            "allow" | "prefer" => Ok(Encryption::Prefer),
            "require" => Ok(Encryption::Require),
            other => Err(format!(
                "sslmode `{other}` is not supported (use disable, allow, prefer or require; \
                 certificate verification needs sslrootcert, which the node config has not)"
            )),
        }
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
    let encryption = Encryption::parse(node.sslmode.as_deref()).map_err(|message| {
        fail(QueryError {
            sqlstate: None,
            message,
            detail: None,
            hint: None,
        })
    })?;

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
            Encryption::Require => SslMode::Require,
        });
    if let Some(password) = password {
        config.password(password.expose());
    }

    let connecting = async {
        match encryption {
            Encryption::Disable => {
                let (client, connection) = config.connect(NoTls).await?;
                spawn_connection(node.name.clone(), connection);
                Ok(client)
            }
            Encryption::Prefer | Encryption::Require => {
                let tls = rustls_connector().map_err(|error| QueryError {
                    sqlstate: None,
                    message: format!("cannot set up TLS: {error}"),
                    detail: None,
                    hint: None,
                })?;
                let (client, connection) = config.connect(tls).await?;
                spawn_connection(node.name.clone(), connection);
                Ok::<_, QueryError>(client)
            }
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

fn rustls_connector() -> Result<MakeRustlsConnect, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(UnverifiedServerCert {
        provider: provider.clone(),
    });
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// Encrypts without checking who the server is: what libpq's `prefer` and `require` do when
/// no root certificate is configured. The handshake signatures are still verified, so the
/// session is bound to the certificate the server presented.
#[derive(Debug)]
struct UnverifiedServerCert {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for UnverifiedServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_defaults_to_prefer_and_rejects_verification_modes() {
        assert_eq!(Encryption::parse(None), Ok(Encryption::Prefer));
        assert_eq!(Encryption::parse(Some("disable")), Ok(Encryption::Disable));
        assert_eq!(Encryption::parse(Some("require")), Ok(Encryption::Require));
        assert!(Encryption::parse(Some("verify-full")).is_err());
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
        assert!(rustls_connector().is_ok());
    }
}
