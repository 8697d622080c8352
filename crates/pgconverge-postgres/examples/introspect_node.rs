//! Introspects nodes and prints how long it took, and with `--json` the first snapshot.
//!
//! Usage: `cargo run -p pgconverge-postgres --example introspect_node -- HOST PORT[,PORT…] DB
//! USER [SCHEMA…] [--json] [--repeat N] [--sslmode MODE]`. Several ports: one node each, connected and
//! introspected concurrently per round, as `plan` does. `--sslmode` defaults to `disable`. The password comes from the usual
//! sources (`PGPASSWORD`, `~/.pgpass`, …). For measuring introspection on large schemas.

use std::time::Instant;

use pgconverge_model::NodeConfig;
use pgconverge_postgres::{introspect_nodes, resolve_password, IntrospectScope};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let json = take_flag(&mut args, "--json");
    let repeat = take_option(&mut args, "--repeat").map_or(Ok(1), |n| n.parse::<u32>())?;
    let sslmode = take_option(&mut args, "--sslmode").unwrap_or_else(|| "disable".to_string());
    let [host, ports, db, user, schemas @ ..] = args.as_slice() else {
        return Err(
            "usage: introspect_node HOST PORT[,PORT…] DB USER [SCHEMA…] [--json] [--repeat N] [--sslmode MODE]"
                .into(),
        );
    };
    let scope = IntrospectScope {
        schemas: if schemas.is_empty() {
            vec!["public".into()]
        } else {
            schemas.to_vec()
        },
        ..Default::default()
    };
    let mut nodes = Vec::new();
    for (index, port) in ports.split(',').enumerate() {
        let node = NodeConfig {
            name: format!("node{}", index + 1),
            host: host.clone(),
            port: Some(port.parse()?),
            peer_host: None,
            peer_port: None,
            db: db.clone(),
            user: user.clone(),
            password: None,
            password_env: None,
            password_command: None,
            sslmode: Some(sslmode.clone()),
            sslrootcert: None,
            sslcert: None,
            sslkey: None,
            subscription_tls: None,
            external: false,
            donor: None,
            merge_rows: false,
        };
        let password = resolve_password(&node, &|name| std::env::var(name).ok())?;
        nodes.push((node, password));
    }
    for round in 1..=repeat {
        let started = Instant::now();
        let results = introspect_nodes(&nodes, &scope).await;
        let elapsed = started.elapsed();
        eprintln!("round {round}: {elapsed:?} to connect and introspect");
        for result in &results {
            match result {
                Ok(catalog) => eprintln!("  {} tables", catalog.tables.len()),
                Err(error) => eprintln!("  {error}"),
            }
        }
        if json && round == repeat {
            if let Some(Ok(catalog)) = results.first() {
                println!("{}", serde_json::to_string_pretty(catalog)?);
            }
        }
    }
    Ok(())
}

fn take_flag(args: &mut Vec<String>, flag: &str) -> bool {
    let before = args.len();
    args.retain(|arg| arg != flag);
    args.len() != before
}

fn take_option(args: &mut Vec<String>, name: &str) -> Option<String> {
    let position = args.iter().position(|arg| arg == name)?;
    args.remove(position);
    (position < args.len()).then(|| args.remove(position))
}
