//! Starts real PostgreSQL servers (from <repo>/.pg/<major>) on ports 15400-15499 and checks
//! the sandbox lifecycle (up, idempotent up, status from a later process, stop, kill,
//! start, clear errors, down) on 18, and logical replication between nodes on 16, 17, 18.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use pgconverge_sandbox::{
    NodeStatus, PgBinaries, ReplicationCapacity, Sandbox, SandboxError, SandboxNodeSpec,
    SANDBOX_MESH_HEADROOM,
};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crate lives in <repo>/crates/<name>")
        .to_path_buf()
}

fn installed(major: u32) -> PgBinaries {
    let bin_dir = repo_root().join(format!(".pg/{major}/bin"));
    PgBinaries::probe(&bin_dir).unwrap_or_else(|reason| {
        panic!(
            "\n\nPostgreSQL {major} is needed in {} ({reason}).\nInstall it with \
             `scripts/install-postgres.sh {major}`.\n\n",
            bin_dir.display()
        )
    })
}

fn pg18() -> PgBinaries {
    installed(18)
}

/// Next port to try; starts at a slice chosen by process id so concurrent runs rarely
/// collide, and only moves forward so tests of one process never pick the same port.
static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

/// `n` ports in 15400-15499 that nothing listens on.
fn ports_in_range(n: usize) -> Vec<u16> {
    let _ = NEXT_PORT.compare_exchange(
        0,
        (std::process::id() % 100) as u16 + 1,
        Ordering::SeqCst,
        Ordering::SeqCst,
    );
    let mut ports = Vec::with_capacity(n);
    for _ in 0..100 {
        let port = 15400 + NEXT_PORT.fetch_add(1, Ordering::SeqCst) % 100;
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            ports.push(port);
            if ports.len() == n {
                return ports;
            }
        }
    }
    panic!("not enough free ports in 15400-15499")
}

fn node(name: &str, port: u16, password: Option<&str>) -> SandboxNodeSpec {
    SandboxNodeSpec {
        name: name.to_string(),
        port,
        db: "app".to_string(),
        user: "pgc".to_string(),
        password: password.map(str::to_string),
        tls: false,
    }
}

/// Runs one query with psql (from the 18 install: 16 and 17 ship no clients); Err holds
/// psql's stderr.
fn psql(port: u16, password: Option<&str>, sql: &str) -> Result<String, String> {
    let mut command = Command::new(repo_root().join(".pg/18/bin/psql"));
    command
        .args([
            "-X",
            "-A",
            "-t",
            "-h",
            "127.0.0.1",
            "-U",
            "pgc",
            "-d",
            "app",
        ])
        .arg("-p")
        .arg(port.to_string())
        .arg("-c")
        .arg(sql)
        .env_remove("PGPASSWORD")
        .env("PGCONNECT_TIMEOUT", "10");
    if let Some(password) = password {
        command.env("PGPASSWORD", password);
    } else {
        // Without this psql would wait for a password on the terminal.
        command.arg("-w");
    }
    let output = command.output().map_err(|e| e.to_string())?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_string())
    }
}

fn by_name<'a>(statuses: &'a [NodeStatus], name: &str) -> &'a NodeStatus {
    statuses
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no status for {name} in {statuses:?}"))
}

/// Stops the servers and removes the scratch directory even when an assertion fails.
struct Cleanup {
    sandbox: Sandbox,
    scratch: PathBuf,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Err(e) = self.sandbox.destroy() {
            eprintln!("cleanup of {}: {e}", self.sandbox.root().display());
        }
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

#[test]
fn two_nodes_lifecycle() {
    let bins = pg18();
    let root = std::env::temp_dir().join(format!("pgconverge-sandbox-it-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let sandbox = Sandbox::new(root.join(".pgconverge/sandbox"), bins.clone());
    let cleanup = Cleanup {
        sandbox: sandbox.clone(),
        scratch: root.clone(),
    };
    let ports = ports_in_range(3);
    let secret = "s3cret 'quoted'";
    let specs = vec![
        node("n1", ports[0], None),
        node("n2", ports[1], Some(secret)),
    ];

    // Fresh up: both initialised and running.
    let up = sandbox.up(&specs, 2).expect("first up");
    assert_eq!(up.len(), 2);
    assert!(up.iter().all(|s| s.running && s.pid.is_some()), "{up:?}");
    assert!(up.iter().all(|s| s.version == bins.version));
    let first_pids: Vec<Option<u32>> = up.iter().map(|s| s.pid).collect();

    // Settings took effect; n1 trusts loopback, n2 wants its password.
    let capacity = ReplicationCapacity::for_mesh(SANDBOX_MESH_HEADROOM);
    let settings = psql(
        ports[0],
        None,
        "select current_setting('wal_level'), current_setting('track_commit_timestamp'), \
         current_setting('max_replication_slots'), current_setting('listen_addresses'), \
         (select rolsuper from pg_roles where rolname = current_user)",
    )
    .expect("n1 accepts trust");
    assert_eq!(
        settings,
        format!("logical|on|{}|127.0.0.1|t", capacity.max_replication_slots)
    );
    let refused = psql(ports[1], None, "select 1").expect_err("n2 needs a password");
    assert!(refused.contains("password"), "{refused}");
    assert_eq!(psql(ports[1], Some(secret), "select 1").as_deref(), Ok("1"));

    // Idempotent: a second up leaves running servers alone.
    let again = sandbox.up(&specs, 2).expect("second up");
    assert_eq!(
        again.iter().map(|s| s.pid).collect::<Vec<_>>(),
        first_pids,
        "second up restarted a server"
    );

    // A later process sees the same servers through sandbox.json.
    let reopened = Sandbox::open(sandbox.root().to_path_buf())
        .expect("open")
        .expect("sandbox.json exists");
    assert_eq!(reopened.binaries(), &bins);
    assert_eq!(reopened.status().expect("status"), again);

    // stop_node, then up starts it again.
    sandbox.stop_node("n1").expect("stop n1");
    let stopped = sandbox.status().expect("status");
    assert!(!by_name(&stopped, "n1").running);
    assert!(by_name(&stopped, "n2").running);
    assert!(psql(ports[0], None, "select 1").is_err());
    let restarted = sandbox.up(&specs, 2).expect("up after stop");
    assert!(by_name(&restarted, "n1").running);
    assert_eq!(psql(ports[0], None, "select 1").as_deref(), Ok("1"));

    // kill_node leaves no process behind; start_node recovers the node.
    sandbox.kill_node("n2").expect("kill n2");
    assert!(!by_name(&sandbox.status().expect("status"), "n2").running);
    assert!(matches!(
        sandbox.kill_node("n2"),
        Err(SandboxError::NotRunning { .. })
    ));
    sandbox.start_node("n2").expect("start n2 after kill");
    assert_eq!(psql(ports[1], Some(secret), "select 1").as_deref(), Ok("1"));

    // A port held by something else is named with its node.
    let blocker = TcpListener::bind((Ipv4Addr::LOCALHOST, ports[2])).expect("hold port");
    let mut three = specs.clone();
    three.push(node("n3", ports[2], None));
    let err = sandbox.up(&three, 3).expect_err("port in use");
    assert!(
        matches!(&err, SandboxError::PortInUse { node, port } if node == "n3" && *port == ports[2]),
        "{err}"
    );
    drop(blocker);

    // A node joining the sandbox leaves the running servers alone: restarting them would
    // disconnect every client writing to them.
    let pid_of = |statuses: &[NodeStatus], name: &str| by_name(statuses, name).pid;
    let before = sandbox.status().expect("status");
    let grown = sandbox.up(&three, 3).expect("up with a third node");
    for name in ["n1", "n2"] {
        assert_eq!(
            pid_of(&grown, name),
            pid_of(&before, name),
            "{name} restarted"
        );
    }
    assert!(by_name(&grown, "n3").running);

    // A server that cannot start reports the tail of its log.
    sandbox.stop_node("n1").expect("stop n1");
    let conf = sandbox.root().join("n1/data/postgresql.conf");
    let original = std::fs::read_to_string(&conf).expect("read postgresql.conf");
    std::fs::write(&conf, format!("{original}no_such_setting = 1\n")).expect("break conf");
    let err = sandbox.start_node("n1").expect_err("broken config");
    std::fs::write(&conf, original).expect("restore conf");
    let message = err.to_string();
    assert!(matches!(err, SandboxError::StartFailed { .. }), "{message}");
    assert!(message.contains("n1"), "{message}");
    assert!(message.contains("no_such_setting"), "{message}");
    sandbox
        .start_node("n1")
        .expect("start n1 after fixing config");

    // down stops every recorded server.
    let mut stopped = sandbox.down().expect("down");
    stopped.sort();
    assert_eq!(stopped, vec!["n1", "n2", "n3"]);
    assert!(sandbox.status().expect("status").iter().all(|s| !s.running));
    assert_eq!(sandbox.down().expect("second down"), Vec::<String>::new());

    drop(cleanup);
    assert!(!sandbox.root().exists());
}

#[test]
fn unknown_node_lists_the_known_ones() {
    let root =
        std::env::temp_dir().join(format!("pgconverge-sandbox-unknown-{}", std::process::id()));
    let sandbox = Sandbox::new(root.clone(), pg18());
    let err = sandbox.stop_node("nope").expect_err("no sandbox yet");
    assert!(matches!(err, SandboxError::UnknownNode { .. }), "{err}");
    assert_eq!(sandbox.status().expect("status"), Vec::new());
    assert_eq!(sandbox.down().expect("down"), Vec::<String>::new());
    assert!(Sandbox::open(root).expect("open").is_none());
}

/// Subscriptions need wal_level=logical, free slots and workers, and a loadable
/// libpqwalreceiver: a row written on n1 must reach n2 on every supported major.
#[test]
fn subscription_with_origin_none_replicates_on_16_17_and_18() {
    for major in [16, 17, 18] {
        let scratch = std::env::temp_dir().join(format!(
            "pgconverge-sandbox-repl{major}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&scratch);
        let sandbox = Sandbox::new(scratch.join("sandbox"), installed(major));
        let _cleanup = Cleanup {
            sandbox: sandbox.clone(),
            scratch,
        };
        let ports = ports_in_range(2);
        let specs = [node("n1", ports[0], None), node("n2", ports[1], None)];
        sandbox.up(&specs, 2).expect("up");
        let table = "create table item (id int primary key, label text)";
        psql(ports[0], None, table).expect("table on n1");
        psql(ports[1], None, table).expect("table on n2");
        psql(ports[0], None, "create publication pub for table item").expect("publication");
        let subscribe = format!(
            "create subscription sub connection 'host=127.0.0.1 port={} user=pgc dbname=app' \
             publication pub with (origin = none)",
            ports[0]
        );
        psql(ports[1], None, &subscribe).expect("subscription");
        psql(ports[0], None, "insert into item values (1, 'from n1')").expect("insert");

        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let seen = psql(ports[1], None, "select label from item where id = 1");
            if seen.as_deref() == Ok("from n1") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "PostgreSQL {major}: row not replicated to n2 within 30s (last: {seen:?})\n{}",
                std::fs::read_to_string(sandbox.root().join("n2/postgres.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let version = psql(ports[1], None, "show server_version_num").expect("version");
        assert!(version.starts_with(&major.to_string()), "{version}");
    }
}
