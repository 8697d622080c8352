//! Command-line grammar. Spellings here are a contract with users' scripts.

use std::path::PathBuf;

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
    /// Local PostgreSQL servers on loopback for trying and testing
    Sandbox(SandboxArgs),
    /// Convert nodes.json + schema.json into the unified config file
    Import(ImportArgs),
    /// Inspect the state file and its lock
    State(StateArgs),
}

#[derive(Debug, Args)]
pub struct ValidateArgs {}

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
    },
    /// Stop every sandbox server
    Down,
    /// List sandbox servers
    Status,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
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
