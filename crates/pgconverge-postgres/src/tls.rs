//! TLS for pgconverge's own sessions, as libpq's `sslmode` describes it: `prefer`/`require`
//! encrypt without checking who answers, `verify-ca` checks the server's certificate chain
//! against `sslrootcert`, `verify-full` also checks that it names the host connected to. A
//! client certificate (`sslcert`, `sslkey`) is presented whenever one is configured.
//!
//! A rejected certificate is described in words (unknown CA, name mismatch, expired) through a
//! [`FailureNote`] the verifier fills in, because the TLS library's error reaches the caller
//! wrapped in the driver's.

use std::sync::{Arc, Mutex};

use pgconverge_model::NodeConfig;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error as TlsError, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

/// How the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ServerCheck {
    /// Encrypted, but anyone may answer (libpq's `prefer`/`require` without a root certificate).
    None,
    /// The chain must end at a CA of `sslrootcert` (`verify-ca`).
    Chain,
    /// The chain, and the certificate must name the host (`verify-full`).
    ChainAndName,
}

/// What the verifier found wrong with the server's certificate, in words.
#[derive(Debug, Default, Clone)]
pub(crate) struct FailureNote(Arc<Mutex<Option<String>>>);

impl FailureNote {
    fn record(&self, text: String) {
        if let Ok(mut slot) = self.0.lock() {
            *slot = Some(text);
        }
    }

    pub(crate) fn take(&self) -> Option<String> {
        self.0.lock().ok().and_then(|mut slot| slot.take())
    }
}

/// A connector for `node` with `check`, and the note its verifier writes a rejection into.
/// Fails, naming the setting and the file, when a configured file cannot be used.
pub(crate) fn connector(
    node: &NodeConfig,
    check: ServerCheck,
) -> Result<(MakeRustlsConnect, FailureNote), String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let note = FailureNote::default();
    let verifier: Arc<dyn ServerCertVerifier> = match check {
        ServerCheck::None => Arc::new(UnverifiedServerCert {
            provider: provider.clone(),
        }),
        ServerCheck::Chain | ServerCheck::ChainAndName => {
            let path = node.sslrootcert.as_deref().ok_or_else(|| {
                "certificate verification needs sslrootcert, which the node config has not"
                    .to_string()
            })?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in read_certificates("sslrootcert", path)? {
                roots
                    .add(cert)
                    .map_err(|e| format!("sslrootcert {path}: not a usable CA certificate: {e}"))?;
            }
            let inner =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()
                    .map_err(|e| format!("sslrootcert {path}: {e}"))?;
            Arc::new(VerifiedServerCert {
                inner,
                check_name: check == ServerCheck::ChainAndName,
                rootcert: path.to_string(),
                note: note.clone(),
            })
        }
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match (node.sslcert.as_deref(), node.sslkey.as_deref()) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(read_certificates("sslcert", cert)?, read_key(key)?)
            .map_err(|e| format!("sslcert {cert} and sslkey {key} do not go together: {e}"))?,
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("sslcert and sslkey must be given together".to_string()),
    };
    Ok((MakeRustlsConnect::new(config), note))
}

fn read_certificates(field: &str, path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {field} {path}: {e}"))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{field} {path} is not PEM: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{field} {path} holds no PEM certificate"));
    }
    Ok(certs)
}

/// The private key, refused like libpq refuses it when others may read it.
fn read_key(path: &str) -> Result<PrivateKeyDer<'static>, String> {
    let metadata =
        std::fs::metadata(path).map_err(|e| format!("cannot read sslkey {path}: {e}"))?;
    if !key_permissions_are_private(&metadata) {
        return Err(format!(
            "sslkey {path} has group or world access; it must be u=rw (0600) or less"
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read sslkey {path}: {e}"))?;
    PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|e| format!("sslkey {path} holds no usable PEM private key: {e}"))
}

fn key_permissions_are_private(metadata: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    // libpq allows 0640 for a key owned by root (a group of services may share it).
    metadata.permissions().mode() & 0o037 == 0
}

/// Checks the chain (and for `verify-full` the name) through webpki, writing any rejection
/// into the note in words.
#[derive(Debug)]
struct VerifiedServerCert {
    inner: Arc<WebPkiServerVerifier>,
    check_name: bool,
    rootcert: String,
    note: FailureNote,
}

impl ServerCertVerifier for VerifiedServerCert {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, TlsError> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(verified) => Ok(verified),
            // verify-ca: webpki checks the chain before the name, so the chain is good.
            Err(TlsError::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            Err(error) => {
                self.note
                    .record(describe_rejection(&error, server_name, &self.rootcert));
                Err(error)
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Why a server certificate was refused, as an operator reads it.
pub(crate) fn describe_rejection(
    error: &TlsError,
    server: &ServerName<'_>,
    rootcert: &str,
) -> String {
    let host = server.to_str();
    match error {
        TlsError::InvalidCertificate(CertificateError::UnknownIssuer) => format!(
            "the server's certificate is not signed by a CA in sslrootcert {rootcert} (unknown CA)"
        ),
        // A certificate naming a CA of sslrootcert as its issuer, signed by another key.
        TlsError::InvalidCertificate(CertificateError::BadSignature) => format!(
            "the server's certificate is not signed by a CA in sslrootcert {rootcert} (unknown \
             CA: its issuer has the name of one, but the signature is not that CA's)"
        ),
        TlsError::InvalidCertificate(CertificateError::NotValidForNameContext {
            presented,
            ..
        }) => format!(
            "the server's certificate does not name host {host} (name mismatch; it names {})",
            if presented.is_empty() {
                "nothing".to_string()
            } else {
                presented.join(", ")
            }
        ),
        TlsError::InvalidCertificate(CertificateError::NotValidForName) => {
            format!("the server's certificate does not name host {host} (name mismatch)")
        }
        TlsError::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => "the server's certificate has expired".to_string(),
        TlsError::InvalidCertificate(
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. },
        ) => "the server's certificate is not valid yet".to_string(),
        other => format!("the server's certificate was refused: {other}"),
    }
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
    ) -> Result<ServerCertVerified, TlsError> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, TlsError> {
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
    ) -> Result<HandshakeSignatureValid, TlsError> {
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
    fn rejections_read_as_what_went_wrong() {
        let server = ServerName::try_from("db.example").expect("name");
        let unknown = TlsError::InvalidCertificate(CertificateError::UnknownIssuer);
        let text = describe_rejection(&unknown, &server, "/etc/ca.crt");
        assert!(
            text.contains("unknown CA") && text.contains("/etc/ca.crt"),
            "{text}"
        );
        let mismatch = TlsError::InvalidCertificate(CertificateError::NotValidForName);
        let text = describe_rejection(&mismatch, &server, "ca");
        assert!(
            text.contains("name mismatch") && text.contains("db.example"),
            "{text}"
        );
        let expired = TlsError::InvalidCertificate(CertificateError::Expired);
        assert!(describe_rejection(&expired, &server, "ca").contains("expired"));
    }

    #[test]
    fn a_key_others_may_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!("pgconverge-key-{}.pem", std::process::id()));
        std::fs::write(&path, "not even a key").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let text = path.to_string_lossy().into_owned();
        let error = read_key(&text).expect_err("0644 is refused");
        assert!(error.contains("group or world access"), "{error}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let error = read_key(&text).expect_err("no PEM key");
        assert!(error.contains("no usable PEM private key"), "{error}");
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn missing_files_are_named_with_their_setting() {
        let error = read_certificates("sslrootcert", "/nonexistent/ca.crt").expect_err("missing");
        assert!(error.contains("sslrootcert /nonexistent/ca.crt"), "{error}");
    }
}
