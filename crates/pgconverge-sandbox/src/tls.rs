//! The sandbox's certificate authority: one CA per sandbox (kept in `<root>/tls/`), a server
//! certificate per node naming 127.0.0.1 (where it listens), and client certificates whose CN is
//! the role they log in as, both for pgconverge (`<root>/tls/`) and for each node's
//! subscriptions (`<root>/<node>/tls/`, owned by the server's OS user).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};

use crate::error::SandboxError;
use crate::process::{self, ServerUser};

/// Directory under the sandbox root holding the CA and pgconverge's client certificates.
pub const TLS_DIR: &str = "tls";
/// Years a certificate the sandbox issues stays valid.
const VALID_YEARS: i32 = 10;
/// Names every sandbox server certificate carries: the servers listen on 127.0.0.1 only.
const SERVER_NAMES: [&str; 1] = ["127.0.0.1"];

/// Files of one node's TLS setup, all read by its server (or its subscriptions' libpq).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeTlsFiles {
    pub dir: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// The sandbox CA: checks client certificates and the peers' server certificates.
    pub root_cert: PathBuf,
}

impl NodeTlsFiles {
    pub fn of(node_dir: &Path) -> NodeTlsFiles {
        let dir = node_dir.join(TLS_DIR);
        NodeTlsFiles {
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
            root_cert: dir.join("root.crt"),
            dir,
        }
    }

    /// Client certificate and key the node's subscriptions present when logging in as `role`.
    pub fn client(&self, role: &str) -> (PathBuf, PathBuf) {
        client_files(&self.dir, role)
    }
}

/// A client certificate and key logging in as `role`, in `dir`.
pub fn client_files(dir: &Path, role: &str) -> (PathBuf, PathBuf) {
    let stem = file_stem(role);
    (
        dir.join(format!("client-{stem}.crt")),
        dir.join(format!("client-{stem}.key")),
    )
}

/// A role name as a file name: other characters than letters, digits, `_` and `-` become `_`
/// followed by their code, so two roles never share a file.
fn file_stem(role: &str) -> String {
    role.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c.to_string()
            } else {
                format!("_{:x}", u32::from(c))
            }
        })
        .collect()
}

/// The sandbox CA, created on first use and kept so later `up`s issue under the same root.
pub struct SandboxCa {
    dir: PathBuf,
    cert_pem: String,
    key: KeyPair,
}

impl SandboxCa {
    /// The CA under `<root>/tls/`, made now if there is none.
    pub fn open_or_create(root: &Path) -> Result<SandboxCa, SandboxError> {
        let dir = root.join(TLS_DIR);
        let cert_path = dir.join("ca.crt");
        let key_path = dir.join("ca.key");
        if cert_path.is_file() && key_path.is_file() {
            let cert_pem = read(&cert_path)?;
            let key = KeyPair::from_pem(&read(&key_path)?)
                .map_err(|e| tls_error(format!("reading {}", key_path.display()), e))?;
            return Ok(SandboxCa { dir, cert_pem, key });
        }
        std::fs::create_dir_all(&dir)
            .map_err(|e| SandboxError::io(format!("creating {}", dir.display()), e))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| SandboxError::io(format!("chmod 755 {}", dir.display()), e))?;
        let key = KeyPair::generate().map_err(|e| tls_error("generating the CA key", e))?;
        let cert = ca_params()
            .self_signed(&key)
            .map_err(|e| tls_error("signing the CA certificate", e))?;
        write_private(&key_path, &key.serialize_pem(), None)?;
        write_public(&cert_path, &cert.pem(), None)?;
        Ok(SandboxCa {
            dir,
            cert_pem: cert.pem(),
            key,
        })
    }

    /// The CA certificate file pgconverge verifies the servers with.
    pub fn cert_path(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// The CA as the signer of a certificate: its name and key (the same parameters it was
    /// made from, so issued certificates name it as it names itself).
    fn issuer(&self) -> Result<Issuer<'_, &KeyPair>, SandboxError> {
        Ok(Issuer::new(ca_params(), &self.key))
    }

    /// Server certificate, key and CA copy for one node, owned by its server's OS user.
    pub fn issue_node(&self, files: &NodeTlsFiles, owner: &ServerUser) -> Result<(), SandboxError> {
        make_dir(&files.dir, owner)?;
        let key = KeyPair::generate().map_err(|e| tls_error("generating a server key", e))?;
        let names: Vec<String> = SERVER_NAMES.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names)
            .map_err(|e| tls_error("naming the server certificate", e))?;
        params
            .distinguished_name
            .push(DnType::CommonName, SERVER_NAMES[0]);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        set_validity(&mut params);
        let cert = params
            .signed_by(&key, &self.issuer()?)
            .map_err(|e| tls_error("signing a server certificate", e))?;
        write_private(&files.server_key, &key.serialize_pem(), Some(owner))?;
        write_public(&files.server_cert, &cert.pem(), Some(owner))?;
        write_public(&files.root_cert, &self.cert_pem, Some(owner))
    }

    /// A client certificate with CN `role` into `cert` and `key`, owned by `owner` (the
    /// invoking user when `None`).
    pub fn issue_client(
        &self,
        role: &str,
        cert: &Path,
        key: &Path,
        owner: Option<&ServerUser>,
    ) -> Result<(), SandboxError> {
        let key_pair = KeyPair::generate().map_err(|e| tls_error("generating a client key", e))?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, role);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        set_validity(&mut params);
        let signed = params
            .signed_by(&key_pair, &self.issuer()?)
            .map_err(|e| tls_error(format!("signing a client certificate for {role}"), e))?;
        write_private(key, &key_pair.serialize_pem(), owner)?;
        write_public(cert, &signed.pem(), owner)
    }

    /// pgconverge's client certificate for `role`, under `<root>/tls/`.
    pub fn issue_pgconverge_client(&self, role: &str) -> Result<(PathBuf, PathBuf), SandboxError> {
        let (cert, key) = client_files(&self.dir, role);
        self.issue_client(role, &cert, &key, None)?;
        Ok((cert, key))
    }
}

fn ca_params() -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, "pgconverge sandbox CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    set_validity(&mut params);
    params
}

/// From January 1 of this year for [`VALID_YEARS`].
fn set_validity(params: &mut CertificateParams) {
    let seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Whole years since 1970, rounded down: never later than today.
    let year = 1970 + i32::try_from(seconds / 31_556_952).unwrap_or(0);
    params.not_before = date_time_ymd(year, 1, 1);
    params.not_after = date_time_ymd(year + VALID_YEARS, 1, 1);
}

fn make_dir(dir: &Path, owner: &ServerUser) -> Result<(), SandboxError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| SandboxError::io(format!("creating {}", dir.display()), e))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| SandboxError::io(format!("chmod 700 {}", dir.display()), e))?;
    process::give_to(dir, owner)
}

/// A key: readable by its owner only (PostgreSQL and libpq refuse it otherwise).
fn write_private(path: &Path, pem: &str, owner: Option<&ServerUser>) -> Result<(), SandboxError> {
    write_with_mode(path, pem, 0o600, owner)
}

fn write_public(path: &Path, pem: &str, owner: Option<&ServerUser>) -> Result<(), SandboxError> {
    write_with_mode(path, pem, 0o644, owner)
}

fn write_with_mode(
    path: &Path,
    content: &str,
    mode: u32,
    owner: Option<&ServerUser>,
) -> Result<(), SandboxError> {
    // Removed first, so a key is never briefly readable under an older, wider mode.
    let _ = std::fs::remove_file(path);
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(path)
            .map_err(|e| SandboxError::io(format!("creating {}", path.display()), e))?;
        file.write_all(content.as_bytes())
            .map_err(|e| SandboxError::io(format!("writing {}", path.display()), e))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| SandboxError::io(format!("chmod {mode:o} {}", path.display()), e))?;
    match owner {
        Some(user) => process::give_to(path, user),
        None => Ok(()),
    }
}

fn read(path: &Path) -> Result<String, SandboxError> {
    std::fs::read_to_string(path)
        .map_err(|e| SandboxError::io(format!("reading {}", path.display()), e))
}

fn tls_error(context: impl Into<String>, error: rcgen::Error) -> SandboxError {
    SandboxError::io(context, std::io::Error::other(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_become_distinct_file_names() {
        assert_eq!(file_stem("pgconverge"), "pgconverge");
        assert_eq!(file_stem("a b"), "a_20b");
        assert_ne!(file_stem("a/b"), file_stem("a_b"));
    }

    #[test]
    fn the_ca_is_made_once_and_signs_clients() {
        let root = std::env::temp_dir().join(format!("pgconverge-ca-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let ca = SandboxCa::open_or_create(&root).expect("ca");
        let again = SandboxCa::open_or_create(&root).expect("same ca");
        assert_eq!(ca.cert_pem, again.cert_pem);
        let (cert, key) = ca.issue_pgconverge_client("pgc").expect("client");
        let mode = std::fs::metadata(&key).expect("key").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(read(&cert).expect("cert").contains("BEGIN CERTIFICATE"));
        let _ = std::fs::remove_dir_all(&root);
    }
}
