//! Test support: starts real PostgreSQL servers for integration tests.
//!
//! A [`TestCluster`] is a temporary working directory plus N sandbox servers (`n1`, `n2`, …)
//! on free loopback ports, each with database `app` owned by superuser `pgc` (trust auth).
//! The PostgreSQL major comes from `PGCONVERGE_TEST_PG_MAJOR` (default 18) and its binaries
//! from `<repo>/.pg/<major>/bin`, installed by `scripts/install-postgres.sh`. Missing
//! binaries fail the test loudly: a test that silently skips proves nothing.
//!
//! [`TestCluster::start_tls`] runs the servers from `<repo>/.pg/18-tls` (PostgreSQL 18 built
//! with OpenSSL, [`TLS_BUILD`]) with `sandbox up --tls`'s setup: TLS only, certificates from
//! the sandbox CA; its [`TestCluster::client`] verifies the server and presents `pgc`'s
//! client certificate.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pgconverge_sandbox::{free_ports, PgBinaries, Sandbox, SandboxError, SandboxNodeSpec};

/// Environment variable choosing the PostgreSQL major the tests run against.
pub const PG_MAJOR_ENV: &str = "PGCONVERGE_TEST_PG_MAJOR";
/// When set, a finished test leaves its working directory (and server logs) in place.
pub const KEEP_DIR_ENV: &str = "PGCONVERGE_KEEP_TEST_DIR";
pub const DEFAULT_PG_MAJOR: u32 = 18;
/// Majors scripts/install-postgres.sh installs into .pg/.
pub const SUPPORTED_MAJORS: [u32; 3] = [16, 17, 18];
/// The `.pg/` directory of the PostgreSQL build with OpenSSL that TLS tests run on.
pub const TLS_BUILD: &str = "18-tls";
pub const TEST_DB: &str = "app";
pub const TEST_USER: &str = "pgc";

/// Attempts at bringing a cluster up when a freshly picked port got taken meanwhile.
const PORT_ATTEMPTS: usize = 3;

static CLUSTER_COUNTER: AtomicUsize = AtomicUsize::new(0);

/// One server of a [`TestCluster`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestNode {
    /// `n1`, `n2`, …
    pub name: String,
    pub port: u16,
    /// Always `app`.
    pub db: String,
    /// Always `pgc`, a superuser.
    pub user: String,
}

impl TestNode {
    /// libpq keyword/value connection string for this node.
    pub fn connection_string(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user={} dbname={}",
            self.port, self.user, self.db
        )
    }

    /// This node as an entry of a pgconverge.json `nodes` array.
    pub fn config_json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "host": "127.0.0.1",
            "port": self.port,
            "db": self.db,
            "user": self.user,
        })
    }
}

/// Running servers plus a temporary working directory; everything stops and is removed
/// when the value is dropped.
pub struct TestCluster {
    /// Temporary working directory; [`TestCluster::pgconverge`] runs there.
    pub dir: PathBuf,
    pub nodes: Vec<TestNode>,
    sandbox: Sandbox,
    /// Started with `sandbox up --tls`'s setup.
    tls: bool,
}

impl TestCluster {
    /// Starts `node_count` servers. Panics, saying how to fix it, when the PostgreSQL
    /// binaries are missing or a server does not start.
    pub fn start(node_count: usize) -> TestCluster {
        Self::start_with(node_count, test_binaries(), false)
    }

    /// Starts `node_count` servers of the [`TLS_BUILD`] with TLS only and certificate
    /// authentication for `pgc`, whatever `PGCONVERGE_TEST_PG_MAJOR` says.
    pub fn start_tls(node_count: usize) -> TestCluster {
        Self::start_with(node_count, tls_binaries(), true)
    }

    fn start_with(node_count: usize, bins: PgBinaries, tls: bool) -> TestCluster {
        let dir = unique_temp_dir();
        let sandbox = Sandbox::new(dir.join(".pgconverge").join("sandbox"), bins);

        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            let ports = match free_ports(node_count) {
                Ok(ports) => ports,
                Err(e) => {
                    cleanup_failed_start(&sandbox, &dir);
                    panic!("TestCluster: cannot find {node_count} free ports: {e}");
                }
            };
            let specs: Vec<SandboxNodeSpec> = ports
                .iter()
                .enumerate()
                .map(|(i, &port)| SandboxNodeSpec {
                    name: format!("n{}", i + 1),
                    port,
                    db: TEST_DB.to_string(),
                    user: TEST_USER.to_string(),
                    password: None,
                    tls,
                })
                .collect();
            match sandbox.up(&specs, node_count) {
                Ok(_) => {
                    let nodes = specs
                        .into_iter()
                        .map(|s| TestNode {
                            name: s.name,
                            port: s.port,
                            db: s.db,
                            user: s.user,
                        })
                        .collect();
                    return TestCluster {
                        dir,
                        nodes,
                        sandbox,
                        tls,
                    };
                }
                // Another process took a port between picking and binding: pick again.
                Err(e @ SandboxError::PortInUse { .. }) => {
                    if let Err(down) = sandbox.destroy() {
                        eprintln!("TestCluster: cleaning up after a port clash: {down}");
                    }
                    last_error = Some(e);
                }
                Err(e) => {
                    cleanup_failed_start(&sandbox, &dir);
                    panic!("TestCluster: starting {node_count} PostgreSQL servers failed:\n{e}");
                }
            }
        }
        cleanup_failed_start(&sandbox, &dir);
        match last_error {
            Some(e) => {
                panic!("TestCluster: ports kept clashing after {PORT_ATTEMPTS} attempts: {e}")
            }
            None => panic!("TestCluster: no attempt was made to start the servers"),
        }
    }

    /// The `nodes` array of a pgconverge.json for this cluster.
    pub fn nodes_json(&self) -> serde_json::Value {
        serde_json::Value::Array(self.nodes.iter().map(TestNode::config_json).collect())
    }

    /// Writes `<dir>/pgconverge.json` holding this cluster's nodes and `tables`.
    pub fn write_config(&self, tables: serde_json::Value) -> PathBuf {
        self.write_config_value(serde_json::json!({
            "nodes": self.nodes_json(),
            "tables": tables,
        }))
    }

    /// Writes `<dir>/pgconverge.json` holding only the nodes `members` (0-based) and `tables`:
    /// the other servers run but are not (or no longer) in the mesh.
    pub fn write_config_for(&self, members: &[usize], tables: serde_json::Value) -> PathBuf {
        let nodes: Vec<serde_json::Value> = members
            .iter()
            .map(|&i| self.node(i).config_json())
            .collect();
        self.write_config_value(serde_json::json!({ "nodes": nodes, "tables": tables }))
    }

    /// Writes `config` as `<dir>/pgconverge.json`.
    pub fn write_config_value(&self, config: serde_json::Value) -> PathBuf {
        let path = self.dir.join("pgconverge.json");
        let text = serde_json::to_string_pretty(&config)
            .unwrap_or_else(|e| panic!("TestCluster: serialising pgconverge.json: {e}"));
        std::fs::write(&path, text + "\n")
            .unwrap_or_else(|e| panic!("TestCluster: writing {}: {e}", path.display()));
        path
    }

    /// The single `int8` value `sql` returns on node `node` (0-based), e.g. a `count(*)`.
    pub async fn query_i64(&self, node: usize, sql: &str) -> i64 {
        self.client(node)
            .await
            .query_one(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql} on node {node}: {e}"))
            .get(0)
    }

    /// A connection to node `node` (0-based) as `pgc` to `app`; its connection task is
    /// spawned on the current tokio runtime. On a TLS cluster the server is verified against
    /// the sandbox CA and `pgc`'s client certificate is presented.
    pub async fn client(&self, node: usize) -> tokio_postgres::Client {
        let target = self.node(node);
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(target.port)
            .user(&target.user)
            .dbname(&target.db)
            .application_name("pgconverge-tests")
            .connect_timeout(Duration::from_secs(10));
        let failed = |e: tokio_postgres::Error| -> ! {
            panic!(
                "TestCluster: connecting to {} ({}) failed: {e}",
                target.name,
                target.connection_string()
            )
        };
        if self.tls {
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
            let (cert, key) = self.sandbox.pgconverge_client_files(&target.user);
            let tls = tls_connector(&self.sandbox.ca_cert_path(), &cert, &key);
            let (client, connection) = config.connect(tls).await.unwrap_or_else(|e| failed(e));
            tokio::spawn(async move {
                let _ = connection.await;
            });
            return client;
        }
        let (client, connection) = config
            .connect(tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| failed(e));
        tokio::spawn(async move {
            // Ends when the client is dropped or the server goes away (e.g. kill_node).
            let _ = connection.await;
        });
        client
    }

    /// Runs the pgconverge binary with `args` in [`TestCluster::dir`], with `NO_COLOR=1` and
    /// `PGCONVERGE_PG_BIN` pointing at this cluster's PostgreSQL binaries.
    pub fn pgconverge(&self, args: &[&str]) -> Output {
        let bin = Self::pgconverge_bin();
        Command::new(&bin)
            .args(args)
            .current_dir(&self.dir)
            .env("NO_COLOR", "1")
            .env(
                pgconverge_sandbox::PG_BIN_ENV,
                &self.sandbox.binaries().bin_dir,
            )
            .output()
            .unwrap_or_else(|e| panic!("TestCluster: running {}: {e}", bin.display()))
    }

    /// `target/<profile>/pgconverge` next to the running test executable.
    pub fn pgconverge_bin() -> PathBuf {
        let exe = std::env::current_exe()
            .unwrap_or_else(|e| panic!("TestCluster: cannot locate the test executable: {e}"));
        // Test executables live in target/<profile>/deps/.
        let profile_dir = exe
            .parent()
            .and_then(|deps| {
                if deps.file_name().is_some_and(|n| n == "deps") {
                    deps.parent()
                } else {
                    Some(deps)
                }
            })
            .unwrap_or_else(|| panic!("TestCluster: {} has no parent directory", exe.display()));
        let bin = profile_dir.join("pgconverge");
        if !bin.is_file() {
            panic!(
                "\n\n=== pgconverge binary not built ===\n{} does not exist.\nRun `cargo build -p \
                 pgconverge` (or scripts/test.sh, which builds it) before these tests.\n\n",
                bin.display()
            );
        }
        bin
    }

    /// Fast shutdown of node `node` (0-based).
    pub fn stop_node(&self, node: usize) {
        let name = &self.node(node).name;
        self.sandbox
            .stop_node(name)
            .unwrap_or_else(|e| panic!("TestCluster: stopping {name}: {e}"));
    }

    /// Starts node `node` (0-based) again after stop_node or kill_node.
    pub fn start_node(&self, node: usize) {
        let name = &self.node(node).name;
        self.sandbox
            .start_node(name)
            .unwrap_or_else(|e| panic!("TestCluster: starting {name}: {e}"));
    }

    /// Crashes node `node` (0-based): SIGKILL to the postmaster and all its processes.
    pub fn kill_node(&self, node: usize) {
        let name = &self.node(node).name;
        self.sandbox
            .kill_node(name)
            .unwrap_or_else(|e| panic!("TestCluster: killing {name}: {e}"));
    }

    /// The PostgreSQL major version the servers run.
    pub fn major(&self) -> u32 {
        self.sandbox.binaries().major
    }

    /// The bin directory of the servers' PostgreSQL.
    pub fn bin_dir(&self) -> &Path {
        &self.sandbox.binaries().bin_dir
    }

    /// Client programs (psql, pg_dump, pgbench) exist only in the PostgreSQL 18 install;
    /// this is their directory whatever major the servers run.
    pub fn client_bin_dir() -> PathBuf {
        let dir = repo_root().join(".pg").join("18").join("bin");
        if !dir.join("psql").is_file() {
            panic!("{}", missing_binaries_message(18, &dir, "psql is missing"));
        }
        dir
    }

    /// Node `node` (0-based); panics with the cluster size when out of range.
    pub fn node(&self, node: usize) -> &TestNode {
        self.nodes.get(node).unwrap_or_else(|| {
            panic!(
                "TestCluster: node index {node} out of range, the cluster has {} nodes",
                self.nodes.len()
            )
        })
    }

    /// The sandbox running the servers (status, logs).
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// Server log of node `node` (0-based), for assertion messages.
    pub fn server_log(&self, node: usize) -> String {
        let path = self
            .sandbox
            .root()
            .join(&self.node(node).name)
            .join("postgres.log");
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| format!("(cannot read {}: {e})", path.display()))
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        // Errors are reported, not raised: panicking while a failed test unwinds aborts.
        if let Err(e) = self.sandbox.down() {
            eprintln!(
                "TestCluster: stopping servers in {}: {e}",
                self.dir.display()
            );
        }
        if std::env::var_os(KEEP_DIR_ENV).is_some() {
            eprintln!(
                "TestCluster: kept {} ({KEEP_DIR_ENV} is set)",
                self.dir.display()
            );
            return;
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("TestCluster: removing {}: {e}", self.dir.display());
        }
    }
}

/// A finished command's exit status, stdout and stderr, for assertion messages.
pub fn output_text(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The repository root: the root package's manifest directory.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The PostgreSQL major chosen by `PGCONVERGE_TEST_PG_MAJOR`, default 18.
pub fn test_major() -> u32 {
    match std::env::var(PG_MAJOR_ENV) {
        Ok(value) if !value.trim().is_empty() => match value.trim().parse() {
            Ok(major) if SUPPORTED_MAJORS.contains(&major) => major,
            _ => {
                panic!("{PG_MAJOR_ENV}={value:?}: the tests run on PostgreSQL {SUPPORTED_MAJORS:?}")
            }
        },
        _ => DEFAULT_PG_MAJOR,
    }
}

fn test_binaries() -> PgBinaries {
    let major = test_major();
    let bin_dir = repo_root().join(".pg").join(major.to_string()).join("bin");
    let bins = PgBinaries::probe(&bin_dir)
        .unwrap_or_else(|reason| panic!("{}", missing_binaries_message(major, &bin_dir, &reason)));
    if bins.major != major {
        panic!(
            "{}",
            missing_binaries_message(
                major,
                &bin_dir,
                &format!("it holds PostgreSQL {} instead", bins.version)
            )
        );
    }
    bins
}

/// The [`TLS_BUILD`] binaries; panics saying how to install them.
fn tls_binaries() -> PgBinaries {
    let bin_dir = repo_root().join(".pg").join(TLS_BUILD).join("bin");
    PgBinaries::probe(&bin_dir).unwrap_or_else(|reason| {
        panic!(
            "\n\n=== PostgreSQL built with OpenSSL is missing ===\n\
             The TLS tests need {} ({reason}).\n\
             Install it with:\n\n    scripts/install-postgres.sh {TLS_BUILD}\n\n",
            bin_dir.display()
        )
    })
}

/// Verifies the server against `ca` (chain and name) and presents `cert`/`key`.
fn tls_connector(ca: &Path, cert: &Path, key: &Path) -> tokio_postgres_rustls::MakeRustlsConnect {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let read = |path: &Path| {
        std::fs::read(path)
            .unwrap_or_else(|e| panic!("TestCluster: reading {}: {e}", path.display()))
    };
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(&read(ca)) {
        roots
            .add(der.unwrap_or_else(|e| panic!("TestCluster: {}: {e}", ca.display())))
            .unwrap_or_else(|e| panic!("TestCluster: {}: {e}", ca.display()));
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read(cert))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("TestCluster: {}: {e}", cert.display()));
    let key = PrivateKeyDer::from_pem_slice(&read(key))
        .unwrap_or_else(|e| panic!("TestCluster: {}: {e}", key.display()));
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|e| panic!("TestCluster: TLS versions: {e}"))
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .unwrap_or_else(|e| panic!("TestCluster: client certificate: {e}"));
    tokio_postgres_rustls::MakeRustlsConnect::new(config)
}

fn missing_binaries_message(major: u32, bin_dir: &Path, reason: &str) -> String {
    format!(
        "\n\n=== PostgreSQL {major} binaries are missing ===\n\
         The integration tests need PostgreSQL {major} in {dir} ({reason}).\n\
         Install it with:\n\n    scripts/install-postgres.sh {major}\n\n\
         (or `scripts/install-postgres.sh all` for 16, 17 and 18; scripts/test.sh does this \
         for you). Choose the major with {PG_MAJOR_ENV}.\n\n",
        dir = bin_dir.display()
    )
}

fn unique_temp_dir() -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "pgconverge-test-{}-{}-{nanos:08x}",
        std::process::id(),
        CLUSTER_COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("TestCluster: creating {}: {e}", dir.display()));
    // The servers run as an unprivileged user when the tests run as root.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("TestCluster: chmod {}: {e}", dir.display()));
    dir
}

fn cleanup_failed_start(sandbox: &Sandbox, dir: &Path) {
    if let Err(e) = sandbox.down() {
        eprintln!("TestCluster: stopping servers after a failed start: {e}");
    }
    if std::env::var_os(KEEP_DIR_ENV).is_some() {
        eprintln!(
            "TestCluster: kept {} ({KEEP_DIR_ENV} is set)",
            dir.display()
        );
        return;
    }
    let _ = std::fs::remove_dir_all(dir);
}
