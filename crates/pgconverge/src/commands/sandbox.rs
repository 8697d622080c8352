//! `pgconverge sandbox up|down|status`: real PostgreSQL servers on loopback for the config's
//! local nodes (or `--count N` new ones), kept under `.pgconverge/sandbox/` beside the config.

use std::path::{Path, PathBuf};

use pgconverge_engine::resolve_secrets;
use pgconverge_model::config::{
    ClusterConfig, NodeConfig, ReplicationConfig, SubscriptionAuth, SubscriptionTlsConfig,
    TlsConfig,
};
use pgconverge_model::load::to_unified_json;
use pgconverge_sandbox::{find_binaries, free_ports, Sandbox, SandboxNodeSpec, PG_BIN_ENV};

use crate::cli::{GlobalArgs, SandboxAction, SandboxArgs};
use crate::config_source::{locate, locate_and_load};
use crate::error::{context, CommandError};

/// Hosts the sandbox may start servers for.
pub(crate) fn is_loopback(host: &str) -> bool {
    matches!(host, "localhost" | "::1")
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn sandbox_root(base: &Path) -> PathBuf {
    base.join(".pgconverge").join("sandbox")
}

pub fn run(global: &GlobalArgs, args: &SandboxArgs) -> Result<u8, CommandError> {
    match &args.action {
        SandboxAction::Up { count, pg_bin, tls } => up(global, *count, pg_bin.as_deref(), *tls),
        SandboxAction::Down => down(global),
        SandboxAction::Status => status(global),
    }
}

fn project_root() -> Option<PathBuf> {
    std::env::current_dir().ok()
}

/// Where scripts/install-postgres.sh puts a PostgreSQL built with OpenSSL.
const TLS_BUILD: &str = "18-tls";

fn open(base: &Path, pg_bin: Option<&Path>, tls: bool) -> Result<Sandbox, CommandError> {
    // The project's other builds have no OpenSSL: with --tls, its TLS build comes first.
    let tls_build = project_root()
        .map(|root| root.join(".pg").join(TLS_BUILD).join("bin"))
        .filter(|dir| tls && dir.is_dir() && std::env::var_os(PG_BIN_ENV).is_none());
    let bins = find_binaries(pg_bin.or(tls_build.as_deref()), project_root().as_deref())
        .map_err(|err| CommandError::new(err.to_string()))?;
    Ok(Sandbox::new(sandbox_root(base), bins))
}

fn up(
    global: &GlobalArgs,
    count: Option<u16>,
    pg_bin: Option<&Path>,
    tls: bool,
) -> Result<u8, CommandError> {
    let (base, config, written) = match count {
        Some(n) => {
            let path = global
                .config
                .clone()
                .unwrap_or_else(|| PathBuf::from("pgconverge.json"));
            if path.exists() {
                return Err(CommandError::new(format!(
                    "{} already exists; `sandbox up --count` writes a new config",
                    path.display()
                ))
                .with_hint("run `pgconverge sandbox up` to start the nodes it describes, or pass --config NEW_FILE"));
            }
            let ports = free_ports(usize::from(n)).map_err(|e| CommandError::new(e.to_string()))?;
            let nodes = ports
                .iter()
                .enumerate()
                .map(|(i, port)| NodeConfig {
                    name: format!("n{}", i + 1),
                    host: "127.0.0.1".into(),
                    port: Some(*port),
                    peer_host: None,
                    peer_port: None,
                    db: "app".into(),
                    user: "pgconverge".into(),
                    password: None,
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
                })
                .collect();
            let config = ClusterConfig {
                schema: None,
                nodes,
                types: Vec::new(),
                tables: Vec::new(),
                replication: ReplicationConfig::default(),
                tls: Default::default(),
                dropped_tables: Vec::new(),
                dropped_types: Vec::new(),
                sql_files: Vec::new(),
                sql_file_texts: Vec::new(),
            };
            let base = match path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
                _ => PathBuf::from("."),
            };
            (base, config, Some(path))
        }
        None => {
            let (location, config) = locate_and_load(global)?;
            (location.base_dir(), config, None)
        }
    };
    let tls = tls || keeps_tls(&base)?;
    let secrets = resolve_secrets(&config)?;
    let specs: Vec<SandboxNodeSpec> = config
        .nodes
        .iter()
        .filter(|n| !n.external && is_loopback(&n.host))
        .map(|n| SandboxNodeSpec {
            name: n.name.clone(),
            port: n.port(),
            db: n.db.clone(),
            user: n.user.clone(),
            password: secrets.get(&n.name).map(|s| s.expose().to_string()),
            tls,
        })
        .collect();
    let skipped: Vec<String> = config
        .nodes
        .iter()
        .filter(|n| n.external || !is_loopback(&n.host))
        .map(|n| n.name.clone())
        .collect();
    if specs.is_empty() {
        return Err(CommandError::new(
            "no node of the config runs on loopback; the sandbox only starts local servers",
        ));
    }
    let sandbox = open(&base, pg_bin, tls)?;
    let statuses = sandbox.up(&specs, config.nodes.len()).map_err(|e| {
        let error = CommandError::new(e.to_string());
        if tls {
            error.with_hint(
                "--tls needs PostgreSQL built with OpenSSL: `scripts/install-postgres.sh 18-tls` \
                 puts one into .pg/18-tls, or point --pg-bin at another",
            )
        } else {
            error
        }
    })?;
    let config = if tls && written.is_some() {
        with_sandbox_tls(config, &sandbox)
    } else {
        config
    };
    if let Some(path) = written {
        std::fs::write(&path, to_unified_json(&config))
            .map_err(context(format!("writing {}", path.display())))?;
        println!(
            "Wrote {} with {} nodes.",
            path.display(),
            config.nodes.len()
        );
    }
    for s in &statuses {
        println!("{}", describe(s));
    }
    if tls {
        print_tls_files(&sandbox, &specs);
    }
    if !skipped.is_empty() {
        println!(
            "Not started (external or not on loopback): {}",
            skipped.join(", ")
        );
    }
    Ok(0)
}

/// Whether the sandbox under `base` already runs with TLS (then `up` keeps it).
fn keeps_tls(base: &Path) -> Result<bool, CommandError> {
    match Sandbox::open(sandbox_root(base)).map_err(|e| CommandError::new(e.to_string()))? {
        Some(sandbox) => sandbox
            .recorded_tls()
            .map_err(|e| CommandError::new(e.to_string())),
        None => Ok(false),
    }
}

/// The config `sandbox up --count N --tls` writes: pgconverge verifies every server
/// (`verify-full`) and logs in by certificate, and every node's subscriptions do the same with
/// the files on its own server, so no password exists anywhere. The role is a superuser: on
/// PostgreSQL 16–18 only a superuser-owned subscription may log in without a password.
fn with_sandbox_tls(mut config: ClusterConfig, sandbox: &Sandbox) -> ClusterConfig {
    let path = |p: PathBuf| Some(p.to_string_lossy().into_owned());
    let user = config
        .nodes
        .first()
        .map(|n| n.user.clone())
        .unwrap_or_default();
    let (cert, key) = sandbox.pgconverge_client_files(&user);
    config.tls = TlsConfig {
        sslmode: Some("verify-full".into()),
        sslrootcert: path(sandbox.ca_cert_path()),
        sslcert: path(cert),
        sslkey: path(key),
        subscription: None,
    };
    for node in &mut config.nodes {
        node.sslmode = None;
        let files = sandbox.tls_files(&node.name);
        let (cert, key) = files.client(&node.user);
        node.subscription_tls = Some(SubscriptionTlsConfig {
            sslmode: Some("verify-full".into()),
            sslrootcert: path(files.root_cert),
            sslcert: path(cert),
            sslkey: path(key),
            auth: Some(SubscriptionAuth::Certificate),
        });
    }
    config
}

fn print_tls_files(sandbox: &Sandbox, specs: &[SandboxNodeSpec]) {
    println!("TLS: CA {}", sandbox.ca_cert_path().display());
    for spec in specs {
        let (cert, key) = sandbox.pgconverge_client_files(&spec.user);
        let files = sandbox.tls_files(&spec.name);
        let (sub_cert, sub_key) = files.client(&spec.user);
        println!(
            "  {}: pgconverge's client certificate {} (key {}); the node's subscriptions use {} (key {}) and CA {}",
            spec.name,
            cert.display(),
            key.display(),
            sub_cert.display(),
            sub_key.display(),
            files.root_cert.display()
        );
    }
}

fn describe(s: &pgconverge_sandbox::NodeStatus) -> String {
    format!(
        "{:<12} 127.0.0.1:{:<6} {:<8} pid {:<8} {}",
        s.name,
        s.port,
        if s.running { "running" } else { "stopped" },
        s.pid.map_or_else(|| "-".to_string(), |p| p.to_string()),
        s.data_dir.display()
    )
}

fn base_dir(global: &GlobalArgs) -> PathBuf {
    locate(global)
        .map(|l| l.base_dir())
        .unwrap_or_else(|_| PathBuf::from("."))
}

fn down(global: &GlobalArgs) -> Result<u8, CommandError> {
    let base = base_dir(global);
    let stopped =
        Sandbox::open(sandbox_root(&base)).map_err(|e| CommandError::new(e.to_string()))?;
    let Some(sandbox) = stopped else {
        println!("No sandbox under {}.", sandbox_root(&base).display());
        return Ok(0);
    };
    let names = sandbox
        .down()
        .map_err(|e| CommandError::new(e.to_string()))?;
    if names.is_empty() {
        println!("No sandbox server was running.");
    } else {
        println!("Stopped: {}", names.join(", "));
    }
    Ok(0)
}

fn status(global: &GlobalArgs) -> Result<u8, CommandError> {
    let base = base_dir(global);
    let Some(sandbox) =
        Sandbox::open(sandbox_root(&base)).map_err(|e| CommandError::new(e.to_string()))?
    else {
        println!("No sandbox under {}.", sandbox_root(&base).display());
        return Ok(0);
    };
    for s in sandbox
        .status()
        .map_err(|e| CommandError::new(e.to_string()))?
    {
        println!("{}", describe(&s));
    }
    Ok(0)
}
