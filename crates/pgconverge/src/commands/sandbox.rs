//! `pgconverge sandbox up|down|status`: real PostgreSQL servers on loopback for the config's
//! local nodes (or `--count N` new ones), kept under `.pgconverge/sandbox/` beside the config.

use std::path::{Path, PathBuf};

use pgconverge_engine::resolve_secrets;
use pgconverge_model::config::{ClusterConfig, NodeConfig, ReplicationConfig};
use pgconverge_model::load::to_unified_json;
use pgconverge_sandbox::{find_binaries, free_ports, Sandbox, SandboxNodeSpec};

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
        SandboxAction::Up { count, pg_bin } => up(global, *count, pg_bin.as_deref()),
        SandboxAction::Down => down(global),
        SandboxAction::Status => status(global),
    }
}

fn project_root() -> Option<PathBuf> {
    std::env::current_dir().ok()
}

fn open(base: &Path, pg_bin: Option<&Path>) -> Result<Sandbox, CommandError> {
    let bins = find_binaries(pg_bin, project_root().as_deref())
        .map_err(|err| CommandError::new(err.to_string()))?;
    Ok(Sandbox::new(sandbox_root(base), bins))
}

fn up(global: &GlobalArgs, count: Option<u16>, pg_bin: Option<&Path>) -> Result<u8, CommandError> {
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
                    external: false,
                    donor: None,
                })
                .collect();
            let config = ClusterConfig {
                schema: None,
                nodes,
                tables: Vec::new(),
                replication: ReplicationConfig::default(),
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
        })
        .collect();
    let skipped: Vec<&str> = config
        .nodes
        .iter()
        .filter(|n| n.external || !is_loopback(&n.host))
        .map(|n| n.name.as_str())
        .collect();
    if specs.is_empty() {
        return Err(CommandError::new(
            "no node of the config runs on loopback; the sandbox only starts local servers",
        ));
    }
    let sandbox = open(&base, pg_bin)?;
    let statuses = sandbox
        .up(&specs, config.nodes.len())
        .map_err(|e| CommandError::new(e.to_string()))?;
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
    if !skipped.is_empty() {
        println!(
            "Not started (external or not on loopback): {}",
            skipped.join(", ")
        );
    }
    Ok(0)
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
