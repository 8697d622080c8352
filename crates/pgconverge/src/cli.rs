//! Command-line grammar. Spellings here are a contract with users' scripts.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "pgconverge",
    version,
    about = "Declarative control plane for multi-master PostgreSQL",
    long_about = "Describe a cluster in JSON; pgconverge plans and applies the tables, conflict \
                  triggers, publications and subscriptions that make every node writable and \
                  convergent."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Unified config file [default: pgconverge.json]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Older format: nodes file (used with --schema) [default: nodes.json]
    #[arg(long, global = true, value_name = "FILE")]
    pub nodes: Option<PathBuf>,
    /// Older format: schema file (used with --nodes) [default: schema.json]
    #[arg(long, global = true, value_name = "FILE")]
    pub schema: Option<PathBuf>,
    /// State file
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        default_value = ".pgconverge/state.json"
    )]
    pub state: PathBuf,
    /// Plain output without colours (also when NO_COLOR is set)
    #[arg(long, global = true)]
    pub no_color: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check the configuration without contacting any node
    Validate(ValidateArgs),
    /// Show what apply would change on every node
    Plan(PlanArgs),
    /// Make every node match the configuration
    Apply(ApplyArgs),
    /// Show every node's replication health and what needs attention
    Status(StatusArgs),
    /// Compare every replicated table across the nodes; --repair makes them agree
    Verify(VerifyArgs),
    /// Write files the servers need that pgconverge does not apply itself
    Generate(GenerateArgs),
    /// Local PostgreSQL servers on loopback for trying and testing
    Sandbox(SandboxArgs),
    /// Write a config from a live database (--from), or from nodes.json + schema.json
    Import(ImportArgs),
    /// Inspect the state file and its lock
    State(StateArgs),
}

#[derive(Debug, Args)]
pub struct ValidateArgs {}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[command(subcommand)]
    pub what: GenerateWhat,
}

#[derive(Debug, Subcommand)]
pub enum GenerateWhat {
    /// pg_hba.conf lines each node needs to accept its peers' subscriptions
    Hba {
        /// Only the lines for this node
        #[arg(long, value_name = "NODE")]
        node: Option<String>,
        /// Authentication method of every line
        #[arg(long, default_value = "scram-sha-256",
              value_parser = clap::builder::PossibleValuesParser::new(pgconverge_plan::generate::hba::AUTH_METHODS))]
        auth_method: String,
    },
    /// psql scripts that make empty databases into the mesh, two parts per node
    ///
    /// Run part 1 (objects) on every node first, then part 2 (subscriptions). Without --out
    /// or --out-dir, every selected script goes to stdout, each headed by its file name.
    /// Passwords are read by psql when part 2 runs (-v pgc_password_<peer>=…, else
    /// PGCONVERGE_<PEER>_PASSWORD, else the peer's password_env), never written to a script.
    Sql {
        /// Only this node's scripts
        #[arg(long, value_name = "NODE")]
        node: Option<String>,
        /// Only this part: objects (run on every node first) or subscriptions (after)
        #[arg(long, value_name = "PART",
              value_parser = clap::builder::PossibleValuesParser::new(pgconverge_plan::generate::sql::PART_NAMES))]
        part: Option<String>,
        /// Write the one selected script (name --node and --part) to FILE
        #[arg(long, value_name = "FILE", conflicts_with = "out_dir")]
        out: Option<PathBuf>,
        /// Write each selected script to DIR as 1-objects.<node>.sql and
        /// 2-subscriptions.<node>.sql (name order is a valid running order)
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
    /// A docker-compose file for the config's local nodes, passwords from an env file
    ///
    /// One service of the plain PostgreSQL image per node that is not external and whose host
    /// is on loopback (the others are named on stderr), replication settings sized for the
    /// mesh, a health check, a named volume, the port published on 127.0.0.1 and one shared
    /// network. Passwords are ${PGCONVERGE_<NODE>_PASSWORD} references, never values.
    Compose {
        /// Write the compose file to FILE instead of stdout
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
        /// The env file the passwords come from; written with empty values if it is missing
        #[arg(long, value_name = "NAME")]
        env_file: Option<PathBuf>,
        /// PostgreSQL major of the image (16 or newer)
        #[arg(long, value_name = "MAJOR", default_value_t = 18,
              value_parser = clap::value_parser!(u32).range(16..))]
        pg_major: u32,
    },
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Save the plan to FILE for `apply FILE`
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Print the plan as versioned JSON (schemas/plan.schema.json)
    #[arg(long, conflicts_with = "sql")]
    pub json: bool,
    /// Print the exact SQL per node in execution order
    #[arg(long)]
    pub sql: bool,
    /// Exit 0 when in sync, 2 when there are changes, 1 on error
    #[arg(long)]
    pub detailed_exitcode: bool,
    /// Show the body diff of every regenerated function, not only of drifted ones
    #[arg(long)]
    pub diff: bool,
    /// Nodes joining the mesh copy their rows from NODE (default: chosen by the plan)
    #[arg(long, value_name = "NODE")]
    pub donor: Option<String>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// A plan saved with `plan --out`; applied exactly, refused when stale
    pub planfile: Option<PathBuf>,
    /// Skip the interactive `yes` confirmation
    #[arg(long)]
    pub auto_approve: bool,
    /// Steps run at once (on different nodes)
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub parallelism: u16,
    /// Nodes joining the mesh copy their rows from NODE (default: chosen by the plan)
    #[arg(long, value_name = "NODE")]
    pub donor: Option<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print the status as versioned JSON (schemas/status.schema.json)
    #[arg(long)]
    pub json: bool,
    /// Exit 0 when healthy, 1 on any error finding, 2 on warnings only
    #[arg(long)]
    pub check: bool,
    /// Count conflicts recorded since a time (RFC 3339) or for a while (1h, 30m, 90s, 2d)
    /// [default: all]
    #[arg(long, value_name = "WHEN", value_parser = parse_since)]
    pub since: Option<SystemTime>,
    /// Warn when a slot's consumer is more than N bytes behind
    #[arg(long, value_name = "N", default_value_t = 64 << 20, value_parser = clap::value_parser!(i64).range(0..))]
    pub max_lag_bytes: i64,
    /// Warn when a subscription has heard nothing for N seconds while WAL waits for it
    #[arg(long, value_name = "N", default_value_t = 60)]
    pub max_lag_seconds: u64,
    /// Also count the rows breaking each declared foreign key (scans the referencing tables)
    #[arg(long)]
    pub orphans: bool,
    /// Warn when a slot keeps more than N bytes of WAL
    #[arg(long, value_name = "N", default_value_t = 1 << 30, value_parser = clap::value_parser!(i64).range(0..))]
    pub max_retained_wal: i64,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Only this table (`table` or `schema.table`); repeat for more [default: all]
    #[arg(long = "table", value_name = "TABLE")]
    pub tables: Vec<String>,
    /// Print the outcome as versioned JSON (schemas/verify.schema.json)
    #[arg(long)]
    pub json: bool,
    /// Re-send the winning version of each differing key to the nodes that lack it
    #[arg(long)]
    pub repair: bool,
    /// Differing keys listed per table (all are counted)
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub max_keys: usize,
    /// Seconds to wait for subscribers to catch up before differing keys are read again
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    pub catch_up_timeout: u64,
}

/// `--since`: an RFC 3339 time, or a duration back from now (`<number><s|m|h|d>`).
fn parse_since(text: &str) -> Result<SystemTime, String> {
    if let Some(time) = pgconverge_state::parse_rfc3339_utc(text) {
        return Ok(time);
    }
    let duration = parse_duration(text).ok_or_else(|| {
        format!("{text:?} is neither an RFC 3339 time nor a duration like 1h, 30m, 90s or 2d")
    })?;
    SystemTime::now()
        .checked_sub(duration)
        .ok_or_else(|| format!("{text:?} reaches back before the clock's range"))
}

fn parse_duration(text: &str) -> Option<Duration> {
    let unit_at = text.len().checked_sub(1)?;
    let (number, unit) = (text.get(..unit_at)?, text.get(unit_at..)?);
    let seconds_per_unit: u64 = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return None,
    };
    let count: u64 = number.parse().ok()?;
    Some(Duration::from_secs(count.checked_mul(seconds_per_unit)?))
}

#[derive(Debug, Args)]
pub struct SandboxArgs {
    #[command(subcommand)]
    pub action: SandboxAction,
}

#[derive(Debug, Subcommand)]
pub enum SandboxAction {
    /// Start a server for every loopback node of the config (or --count new ones)
    Up {
        /// Start N nodes on free ports and write a config for them
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=16))]
        count: Option<u16>,
        /// Directory holding initdb, pg_ctl and postgres (16 or newer)
        #[arg(long, value_name = "DIR")]
        pg_bin: Option<PathBuf>,
        /// TLS only: a local CA, server and client certificates, certificate authentication
        /// (needs a PostgreSQL built with OpenSSL, e.g. .pg/18-tls)
        #[arg(long)]
        tls: bool,
    },
    /// Stop every sandbox server
    Down,
    /// List sandbox servers
    Status,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Read the tables of this live database: a node of the current config, or a
    /// connection string (`host=… port=… dbname=… user=…`). Without it, nodes.json +
    /// schema.json are converted.
    #[arg(long, value_name = "NODE|CONNINFO")]
    pub from: Option<String>,
    /// Also write the list of what the config cannot describe to FILE (with --from)
    #[arg(long, value_name = "FILE", requires = "from")]
    pub report: Option<PathBuf>,
    /// Where to write the unified config (`-` for standard output) [default: pgconverge.json]
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Overwrite an existing output file
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct StateArgs {
    #[command(subcommand)]
    pub action: StateAction,
}

#[derive(Debug, Subcommand)]
pub enum StateAction {
    /// Print the state file
    Show,
    /// Remove a lock left by an interrupted run
    Unlock {
        /// Lock id, as shown in the lock message
        id: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_reads_durations_and_rfc3339_times() {
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("30m"), Some(Duration::from_secs(1800)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("2d"), Some(Duration::from_secs(172_800)));
        for bad in ["", "h", "1", "1w", "-1h", "1.5h", "99999999999999999999d"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        let time = parse_since("2026-01-02T03:04:05Z").expect("rfc3339");
        assert_eq!(
            pgconverge_state::format_rfc3339_utc(time),
            "2026-01-02T03:04:05Z"
        );
        let hour_ago = parse_since("1h").expect("duration");
        let age = SystemTime::now().duration_since(hour_ago).expect("past");
        assert!((3599..=3601).contains(&age.as_secs()));
        assert!(parse_since("yesterday").is_err());
    }
}
