//! TLS and least privilege on real servers built with OpenSSL (`.pg/18-tls`): pgconverge
//! verifies every server (`verify-full`), a wrong CA or host name stops it before anything
//! changes, subscriptions run encrypted as a non-superuser with a password or as a superuser
//! with a client certificate alone, and no secret lands in a plan, plan file, state or output.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use pgconverge_sandbox::SandboxCa;
use pgconverge_tests::{output_text, TestCluster, TLS_BUILD};
use serde_json::{json, Value};

/// The non-superuser role of the password-authenticated mesh.
const APP_ROLE: &str = "pgc_app";
const APP_PASSWORD: &str = "tls-Test-pw-7c1e9b";
const PASSWORD_ENV: &str = "PGCONVERGE_SECURITY_TEST_PASSWORD";

/// What a non-superuser needs for pgconverge to manage a node and for its subscriptions to
/// run (each grant is explained in docs/security.md).
fn least_privilege_sql(password: &str) -> String {
    format!(
        "CREATE ROLE {APP_ROLE} LOGIN REPLICATION PASSWORD '{password}';
         GRANT pg_create_subscription TO {APP_ROLE};
         GRANT CREATE ON DATABASE app TO {APP_ROLE};
         GRANT CREATE ON SCHEMA public TO {APP_ROLE};
         GRANT SELECT (subconninfo) ON pg_catalog.pg_subscription TO {APP_ROLE};"
    )
}

fn tables() -> Value {
    json!([{
        "name": "items",
        "columns": [
            { "name": "id", "type": "uuid", "default": "gen_random_uuid()" },
            { "name": "label", "type": "text" }
        ],
        "primary_key": ["id"]
    }])
}

fn path_text(path: PathBuf) -> String {
    path.to_string_lossy().into_owned()
}

/// A node entry logging in as `user`, whose subscriptions use the node's own copy of the CA
/// and `user`'s client certificate on its server, authenticating with `auth`.
fn tls_node(cluster: &TestCluster, index: usize, user: &str, auth: &str) -> Value {
    let node = cluster.node(index);
    let files = cluster.sandbox().tls_files(&node.name);
    let (cert, key) = files.client(user);
    let mut entry = json!({
        "name": node.name, "host": "127.0.0.1", "port": node.port, "db": node.db, "user": user,
        "subscription_tls": {
            "sslmode": "verify-full",
            "sslrootcert": path_text(files.root_cert),
            "sslcert": path_text(cert),
            "sslkey": path_text(key),
            "auth": auth
        }
    });
    if auth == "password" {
        entry["password_env"] = json!(PASSWORD_ENV);
    }
    entry
}

/// pgconverge's own TLS settings: verify-full against `ca`, `user`'s client certificate.
fn client_tls(cluster: &TestCluster, user: &str, ca: &Path) -> Value {
    let (cert, key) = cluster.sandbox().pgconverge_client_files(user);
    json!({
        "sslmode": "verify-full",
        "sslrootcert": ca.to_string_lossy(),
        "sslcert": path_text(cert),
        "sslkey": path_text(key)
    })
}

fn pgconverge(cluster: &TestCluster, args: &[&str]) -> Output {
    Command::new(TestCluster::pgconverge_bin())
        .args(args)
        .current_dir(&cluster.dir)
        .env("NO_COLOR", "1")
        .env(PASSWORD_ENV, APP_PASSWORD)
        .env_remove("PGPASSWORD")
        .output()
        .expect("run pgconverge")
}

async fn query_strings(client: &tokio_postgres::Client, sql: &str) -> Vec<String> {
    client
        .query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|row| row.get::<_, String>(0))
        .collect()
}

/// Waits until every node has `want` walsenders, all of them on TLS; returns what it saw.
async fn encrypted_walsenders(cluster: &TestCluster, want: usize) -> Vec<Vec<String>> {
    let sql =
        "SELECT a.usename::text || ' ssl=' || s.ssl::text || ' ' || coalesce(s.version, '-') \
               FROM pg_catalog.pg_stat_activity a JOIN pg_catalog.pg_stat_ssl s USING (pid) \
               WHERE a.backend_type = 'walsender' ORDER BY 1";
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut seen = Vec::new();
        for i in 0..cluster.nodes.len() {
            seen.push(query_strings(&cluster.client(i).await, sql).await);
        }
        if seen.iter().all(|node| node.len() == want) || Instant::now() > deadline {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Writes a row on node 0 and waits until every node has it.
async fn row_reaches_every_node(cluster: &TestCluster, label: &str) {
    cluster
        .client(0)
        .await
        .execute("INSERT INTO public.items (label) VALUES ($1)", &[&label])
        .await
        .expect("insert on n1");
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 1..cluster.nodes.len() {
        let client = cluster.client(i).await;
        loop {
            let found = client
                .query("SELECT 1 FROM public.items WHERE label = $1", &[&label])
                .await
                .expect("select");
            if !found.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{label} did not reach {} within 30 s; its log:\n{}",
                cluster.node(i).name,
                cluster.server_log(i)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn assert_no_secret(what: &str, text: &str) {
    assert!(
        !text.contains(APP_PASSWORD),
        "{what} holds the password:\n{text}"
    );
    assert!(
        !text.contains("PRIVATE KEY"),
        "{what} holds a private key:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_verify_full_everywhere_as_a_non_superuser_with_password_subscriptions() {
    let cluster = TestCluster::start_tls(3);
    assert!(cluster.bin_dir().to_string_lossy().contains(TLS_BUILD));
    for i in 0..3 {
        cluster
            .client(i)
            .await
            .batch_execute(&least_privilege_sql(APP_PASSWORD))
            .await
            .expect("create the least-privileged role");
    }
    cluster
        .sandbox()
        .issue_role_certificates(APP_ROLE)
        .expect("client certificates for the role");
    let ca = cluster.sandbox().ca_cert_path();
    let nodes: Vec<Value> = (0..3)
        .map(|i| tls_node(&cluster, i, APP_ROLE, "password"))
        .collect();
    cluster.write_config_value(json!({
        "tls": client_tls(&cluster, APP_ROLE, &ca),
        "nodes": nodes,
        "tables": tables(),
    }));

    let planned = pgconverge(&cluster, &["plan", "--json", "--out", "mesh.plan"]);
    assert!(planned.status.success(), "{}", output_text(&planned));
    let applied = pgconverge(&cluster, &["apply", "--auto-approve", "mesh.plan"]);
    assert!(applied.status.success(), "{}", output_text(&applied));

    let seen = encrypted_walsenders(&cluster, 2).await;
    for (i, walsenders) in seen.iter().enumerate() {
        assert_eq!(walsenders.len(), 2, "node {i}: {seen:?}");
        for line in walsenders {
            assert!(
                line.starts_with(&format!("{APP_ROLE} ssl=true TLSv1.")),
                "node {i}: {seen:?}"
            );
        }
    }
    let owners = query_strings(
        &cluster.client(0).await,
        "SELECT r.rolname::text || ' super=' || r.rolsuper::text \
         FROM pg_catalog.pg_subscription s JOIN pg_catalog.pg_roles r ON r.oid = s.subowner",
    )
    .await;
    assert_eq!(owners, vec![format!("{APP_ROLE} super=false"); 2]);
    row_reaches_every_node(&cluster, "written on n1 over TLS").await;
    let status = pgconverge(&cluster, &["status", "--check"]);
    assert_eq!(status.status.code(), Some(0), "{}", output_text(&status));
    assert_no_secret("status", &output_text(&status));

    let state = std::fs::read_to_string(cluster.dir.join(".pgconverge/state.json")).expect("state");
    let plan_file = std::fs::read_to_string(cluster.dir.join("mesh.plan")).expect("plan file");
    assert_no_secret("plan --json", &output_text(&planned));
    assert_no_secret("the plan file", &plan_file);
    assert_no_secret("apply's output", &output_text(&applied));
    assert_no_secret("the state file", &state);
    let again = pgconverge(&cluster, &["plan", "--sql"]);
    assert!(again.status.success(), "{}", output_text(&again));
    assert!(
        output_text(&again).contains("No changes"),
        "{}",
        output_text(&again)
    );

    // A changed TLS keyword of the subscriptions is seen (subconninfo is readable through
    // its column grant) and altered in place.
    let nodes: Vec<Value> = (0..3)
        .map(|i| {
            let mut node = tls_node(&cluster, i, APP_ROLE, "password");
            node["subscription_tls"]["sslmode"] = json!("verify-ca");
            node
        })
        .collect();
    cluster.write_config_value(json!({
        "tls": client_tls(&cluster, APP_ROLE, &ca),
        "nodes": nodes,
        "tables": tables(),
    }));
    let changed = pgconverge(&cluster, &["plan"]);
    let text = output_text(&changed);
    assert!(text.contains("sslmode verify-full → verify-ca"), "{text}");
    assert_no_secret("plan", &text);
    let altered = pgconverge(&cluster, &["apply", "--auto-approve"]);
    assert!(altered.status.success(), "{}", output_text(&altered));
    assert_no_secret("apply's output", &output_text(&altered));
    let conninfos = query_strings(
        &cluster.client(1).await,
        "SELECT subconninfo FROM pg_catalog.pg_subscription",
    )
    .await;
    assert!(
        conninfos.iter().all(|c| c.contains("sslmode=verify-ca")),
        "{conninfos:?}"
    );
    row_reaches_every_node(&cluster, "written after the connection changed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_a_wrong_ca_or_host_name_fails_naming_the_node_and_changes_nothing() {
    let cluster = TestCluster::start_tls(2);
    let other_ca_dir = cluster.dir.join("other-ca");
    let other_ca = SandboxCa::open_or_create(&other_ca_dir).expect("a second CA");
    let right_ca = cluster.sandbox().ca_cert_path();
    let nodes: Vec<Value> = (0..2)
        .map(|i| tls_node(&cluster, i, "pgc", "certificate"))
        .collect();

    cluster.write_config_value(json!({
        "tls": client_tls(&cluster, "pgc", &other_ca.cert_path()),
        "nodes": nodes.clone(),
        "tables": tables(),
    }));
    let wrong_ca = pgconverge(&cluster, &["apply", "--auto-approve"]);
    let text = output_text(&wrong_ca);
    assert_eq!(wrong_ca.status.code(), Some(1), "{text}");
    assert!(
        text.contains("node n1") && text.contains("unknown CA"),
        "{text}"
    );

    let mut by_name = nodes.clone();
    by_name[1]["host"] = json!("localhost");
    cluster.write_config_value(json!({
        "tls": client_tls(&cluster, "pgc", &right_ca),
        "nodes": by_name,
        "tables": tables(),
    }));
    let wrong_name = pgconverge(&cluster, &["apply", "--auto-approve"]);
    let text = output_text(&wrong_name);
    assert_eq!(wrong_name.status.code(), Some(1), "{text}");
    assert!(
        text.contains("node n2") && text.contains("name mismatch") && text.contains("localhost"),
        "{text}"
    );

    for i in 0..2 {
        let schemas = query_strings(
            &cluster.client(i).await,
            "SELECT nspname::text FROM pg_catalog.pg_namespace \
             WHERE nspname IN ('_pgconverge') OR nspname LIKE 'pgc%'",
        )
        .await;
        assert!(schemas.is_empty(), "node {i} was changed: {schemas:?}");
        let tables = query_strings(
            &cluster.client(i).await,
            "SELECT relname::text FROM pg_catalog.pg_class WHERE relname = 'items'",
        )
        .await;
        assert!(tables.is_empty(), "node {i} was changed: {tables:?}");
    }
}

/// `sandbox down` of a directory, whatever happens to the test.
struct SandboxGuard {
    dir: PathBuf,
}

impl Drop for SandboxGuard {
    fn drop(&mut self) {
        let _ = Command::new(TestCluster::pgconverge_bin())
            .args(["sandbox", "down"])
            .current_dir(&self.dir)
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn run_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(TestCluster::pgconverge_bin())
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env(
            pgconverge_sandbox::PG_BIN_ENV,
            pgconverge_tests::repo_root()
                .join(".pg")
                .join(TLS_BUILD)
                .join("bin"),
        )
        .env_remove("PGPASSWORD")
        .output()
        .expect("run pgconverge")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_sandbox_tls_config_applies_with_certificates_only_and_no_password_stored() {
    let dir = std::env::temp_dir().join(format!("pgconverge-sandbox-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let guard = SandboxGuard { dir: dir.clone() };
    let up = run_in(&guard.dir, &["sandbox", "up", "--count", "3", "--tls"]);
    assert!(up.status.success(), "{}", output_text(&up));

    let config_path = dir.join("pgconverge.json");
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(&config_path).expect("config"))
            .expect("json");
    let written = config.to_string();
    assert!(!written.contains("password"), "{written}");
    assert_eq!(config["tls"]["sslmode"], "verify-full", "{written}");
    for node in config["nodes"].as_array().expect("nodes") {
        assert_eq!(node["subscription_tls"]["auth"], "certificate", "{written}");
        assert_eq!(
            node["subscription_tls"]["sslmode"], "verify-full",
            "{written}"
        );
    }
    config["tables"] = tables();
    std::fs::write(&config_path, config.to_string()).expect("write config");

    let applied = run_in(&dir, &["apply", "--auto-approve"]);
    assert!(applied.status.success(), "{}", output_text(&applied));
    // A later `sandbox up` without --tls keeps the servers on TLS.
    let restarted = run_in(&dir, &["sandbox", "up"]);
    assert!(restarted.status.success(), "{}", output_text(&restarted));
    let again = run_in(&dir, &["plan", "--detailed-exitcode"]);
    assert_eq!(again.status.code(), Some(0), "{}", output_text(&again));

    // Read through psql of the same build, with the files the config names.
    let tls = config["tls"].clone();
    let psql = move |port: &Value, sql: &str| {
        let conninfo = format!(
            "host=127.0.0.1 port={port} dbname=app user=pgconverge sslmode=verify-full \
             sslrootcert={} sslcert={} sslkey={}",
            tls["sslrootcert"].as_str().expect("ca"),
            tls["sslcert"].as_str().expect("cert"),
            tls["sslkey"].as_str().expect("key"),
        );
        let out = Command::new(
            pgconverge_tests::repo_root()
                .join(".pg")
                .join(TLS_BUILD)
                .join("bin/psql"),
        )
        .args(["-X", "-A", "-t", "-d", &conninfo, "-c", sql])
        .env_remove("PGPASSWORD")
        .output()
        .expect("psql");
        assert!(out.status.success(), "{}", output_text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let nodes = config["nodes"].as_array().expect("nodes").clone();
    psql(
        &nodes[0]["port"],
        "INSERT INTO public.items (label) VALUES ('certificates only')",
    );
    for node in &nodes {
        let psql = |sql: &str| psql(&node["port"], sql);
        let conninfos = psql("SELECT subconninfo FROM pg_catalog.pg_subscription ORDER BY 1");
        assert_eq!(conninfos.lines().count(), 2, "{conninfos}");
        for line in conninfos.lines() {
            assert!(!line.contains("password"), "password at rest: {line}");
            assert!(line.contains("sslmode=verify-full"), "{line}");
            assert!(line.contains("sslcert="), "{line}");
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let walsenders = psql(
                "SELECT count(*) FILTER (WHERE s.ssl) || '/' || count(*) \
                 FROM pg_catalog.pg_stat_activity a JOIN pg_catalog.pg_stat_ssl s USING (pid) \
                 WHERE a.backend_type = 'walsender'",
            );
            if walsenders == "2/2" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "walsenders on {}: {walsenders}",
                node["name"]
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while psql("SELECT count(*) FROM public.items WHERE label = 'certificates only'") != "1" {
            assert!(
                Instant::now() < deadline,
                "the row did not reach {}",
                node["name"]
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A CA of the test's own and a server certificate for 127.0.0.1 it signed, valid only in
/// 2020: (CA certificate PEM, server certificate PEM, server key PEM).
fn expired_server_certificate() -> (String, String, String) {
    use rcgen::{
        date_time_ymd, BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair,
    };
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "expiry test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, &ca_key);
    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string()]).expect("params");
    params.not_before = date_time_ymd(2020, 1, 1);
    params.not_after = date_time_ymd(2020, 12, 31);
    let cert = params.signed_by(&key, &issuer).expect("server certificate");
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}

/// Replaces `path`, keeping its owner and mode (the server's OS user must read it).
fn replace_file(path: &Path, content: &str) {
    use std::os::unix::fs::MetadataExt;
    let before = std::fs::metadata(path).expect("existing file");
    std::fs::write(path, content).expect("write");
    std::os::unix::fs::chown(path, Some(before.uid()), Some(before.gid())).expect("chown");
    std::fs::set_permissions(path, before.permissions()).expect("chmod");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_an_expired_server_certificate_is_refused_as_expired() {
    let cluster = TestCluster::start_tls(1);
    // Connected before the swap: the reload is asked for over this session.
    let client = cluster.client(0).await;
    let (ca_pem, cert_pem, key_pem) = expired_server_certificate();
    let files = cluster.sandbox().tls_files("n1");
    replace_file(&files.server_key, &key_pem);
    replace_file(&files.server_cert, &cert_pem);
    client
        .execute("SELECT pg_catalog.pg_reload_conf()", &[])
        .await
        .expect("reload");
    let ca_path = cluster.dir.join("expiry-ca.crt");
    std::fs::write(&ca_path, ca_pem).expect("CA file");
    cluster.write_config_value(json!({
        "tls": client_tls(&cluster, "pgc", &ca_path),
        "nodes": [tls_node(&cluster, 0, "pgc", "certificate")],
        "tables": tables(),
    }));
    // The reload is asynchronous: the old certificate may still be served for a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let planned = pgconverge(&cluster, &["plan"]);
        let text = output_text(&planned);
        if text.contains("expired") || Instant::now() > deadline {
            assert_eq!(planned.status.code(), Some(1), "{text}");
            assert!(
                text.contains("node n1") && text.contains("the server's certificate has expired"),
                "{text}"
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_certificate_only_subscriptions_need_a_superuser_on_postgresql_18() {
    let cluster = TestCluster::start_tls(2);
    for i in 0..2 {
        cluster
            .client(i)
            .await
            .batch_execute(&least_privilege_sql(APP_PASSWORD))
            .await
            .expect("create the least-privileged role");
    }
    cluster
        .sandbox()
        .issue_role_certificates(APP_ROLE)
        .expect("client certificates for the role");
    let ca = cluster.sandbox().ca_cert_path();
    let nodes: Vec<Value> = (0..2)
        .map(|i| {
            let mut node = tls_node(&cluster, i, APP_ROLE, "certificate");
            node["password_env"] = json!(PASSWORD_ENV);
            node
        })
        .collect();
    cluster.write_config_value(json!({
        "tls": client_tls(&cluster, APP_ROLE, &ca),
        "nodes": nodes,
        "tables": tables(),
    }));
    // PostgreSQL 16-18 refuse such a subscription to a non-superuser owner; pgconverge says
    // so before it changes anything.
    let applied = pgconverge(&cluster, &["apply", "--auto-approve"]);
    let text = output_text(&applied);
    assert_eq!(applied.status.code(), Some(1), "{text}");
    assert!(
        text.contains("node n1: role pgc_app: not a superuser") && text.contains("certificate"),
        "{text}"
    );
    for i in 0..2 {
        let schemas = query_strings(
            &cluster.client(i).await,
            "SELECT nspname::text FROM pg_catalog.pg_namespace WHERE nspname = '_pgconverge'",
        )
        .await;
        assert!(schemas.is_empty(), "node {i} was changed: {schemas:?}");
    }
}
