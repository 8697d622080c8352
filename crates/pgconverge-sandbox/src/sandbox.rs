//! A set of local PostgreSQL servers on loopback ports: create, start, stop, kill, inspect.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::Signal;
use pgconverge_sql::{quote_ident, quote_literal};
use serde::Serialize;

use crate::binaries::PgBinaries;
use crate::error::SandboxError;
use crate::metadata::{NodeRecord, SandboxMetadata};
use crate::process::{self, ServerUser};
use crate::settings;
use crate::tls::{client_files, NodeTlsFiles, SandboxCa, TLS_DIR};

/// Seconds pg_ctl waits for a server to start or stop.
const PG_CTL_TIMEOUT_SECS: &str = "60";
/// Log lines quoted in an error when a server fails to start.
const LOG_TAIL_LINES: usize = 30;
/// Identifiers longer than this are truncated by PostgreSQL (NAMEDATALEN - 1).
const MAX_IDENTIFIER_BYTES: usize = 63;

/// A server the sandbox should run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxNodeSpec {
    pub name: String,
    pub port: u16,
    pub db: String,
    /// Created as a superuser: it creates subscriptions.
    pub user: String,
    /// With a password, loopback connections use scram-sha-256 instead of trust.
    pub password: Option<String>,
    /// TLS only, with certificates from the sandbox CA (see [`crate::tls`]).
    pub tls: bool,
}

/// What `status` (and `up`) report for one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeStatus {
    pub name: String,
    pub port: u16,
    pub db: String,
    pub user: String,
    pub data_dir: PathBuf,
    pub log_file: PathBuf,
    pub pid: Option<u32>,
    pub running: bool,
    /// PostgreSQL version of the sandbox binaries, e.g. `18.6`.
    pub version: String,
}

/// Local servers under one directory, each in `<root>/<node>/data` with its log in
/// `<root>/<node>/postgres.log`, recorded in `<root>/sandbox.json`.
#[derive(Debug, Clone)]
pub struct Sandbox {
    root: PathBuf,
    bins: PgBinaries,
}

struct NodePaths {
    dir: PathBuf,
    data: PathBuf,
    log: PathBuf,
}

impl NodePaths {
    fn new(root: &Path, name: &str) -> Self {
        let dir = root.join(name);
        NodePaths {
            data: dir.join("data"),
            log: dir.join("postgres.log"),
            dir,
        }
    }

    fn of_record(record: &NodeRecord) -> Self {
        NodePaths {
            dir: record
                .data_dir
                .parent()
                .map_or_else(|| record.data_dir.clone(), Path::to_path_buf),
            data: record.data_dir.clone(),
            log: record.log_file.clone(),
        }
    }
}

impl Sandbox {
    /// `root` is typically `<workdir>/.pgconverge/sandbox`; a relative path is taken from
    /// the current directory.
    pub fn new(root: PathBuf, bins: PgBinaries) -> Self {
        Sandbox {
            root: process::absolute(root),
            bins,
        }
    }

    /// The sandbox recorded under `root` by an earlier `up`, with the binaries it used;
    /// `None` when nothing was ever brought up there.
    pub fn open(root: PathBuf) -> Result<Option<Sandbox>, SandboxError> {
        let root = process::absolute(root);
        let Some(metadata) = SandboxMetadata::read(&root)? else {
            return Ok(None);
        };
        Ok(Some(Sandbox {
            bins: PgBinaries {
                bin_dir: metadata.bin_dir,
                major: metadata.major,
                version: metadata.version,
            },
            root,
        }))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn binaries(&self) -> &PgBinaries {
        &self.bins
    }

    /// Whether any node was last brought up with TLS: a later `up` keeps it, so restarting a
    /// TLS sandbox never turns its servers back to plain text.
    pub fn recorded_tls(&self) -> Result<bool, SandboxError> {
        Ok(SandboxMetadata::read(&self.root)?.is_some_and(|m| m.nodes.iter().any(|n| n.tls)))
    }

    /// The TLS files of node `name` (its server certificate, key and the CA), whether or not
    /// they exist yet.
    pub fn tls_files(&self, name: &str) -> NodeTlsFiles {
        NodeTlsFiles::of(&NodePaths::new(&self.root, name).dir)
    }

    /// The CA file every sandbox server certificate is signed by.
    pub fn ca_cert_path(&self) -> PathBuf {
        self.root.join(TLS_DIR).join("ca.crt")
    }

    /// pgconverge's client certificate and key for `role` (under `<root>/tls/`).
    pub fn pgconverge_client_files(&self, role: &str) -> (PathBuf, PathBuf) {
        client_files(&self.root.join(TLS_DIR), role)
    }

    /// Issues client certificates with CN `role`: one for pgconverge, and one in every
    /// recorded node's TLS directory for that node's subscriptions, owned by its server user.
    /// Returns pgconverge's pair.
    pub fn issue_role_certificates(&self, role: &str) -> Result<(PathBuf, PathBuf), SandboxError> {
        let ca = SandboxCa::open_or_create(&self.root)?;
        let metadata = SandboxMetadata::read(&self.root)?.unwrap_or_else(|| {
            SandboxMetadata::new(
                self.bins.bin_dir.clone(),
                self.bins.major,
                self.bins.version.clone(),
            )
        });
        for record in &metadata.nodes {
            let paths = NodePaths::of_record(record);
            let owner = ServerUser::owner_of(&paths.dir)?;
            let (cert, key) = NodeTlsFiles::of(&paths.dir).client(role);
            ca.issue_client(role, &cert, &key, Some(&owner))?;
        }
        ca.issue_pgconverge_client(role)
    }

    /// Creates, configures and starts `nodes`, sized for a full mesh of `mesh_size` nodes
    /// (at least `nodes.len()`). Idempotent: a running node whose configuration is
    /// unchanged is left alone, a stopped one is started, a new one is initialised. A
    /// running node is restarted only when its settings, user, database or password
    /// presence changed.
    pub fn up(
        &self,
        nodes: &[SandboxNodeSpec],
        mesh_size: usize,
    ) -> Result<Vec<NodeStatus>, SandboxError> {
        validate_specs(nodes)?;
        let mesh_size = mesh_size.max(nodes.len());
        let new_user = process::server_user_for_new_nodes()?;
        self.create_root()?;
        process::check_reachable(&self.root, &new_user)?;
        self.check_binaries_usable_by(&new_user)?;

        let previous = SandboxMetadata::read(&self.root)?;
        for spec in nodes {
            self.check_data_major(&spec.name, &NodePaths::new(&self.root, &spec.name))?;
        }
        let mut metadata = previous.clone().unwrap_or_else(|| {
            SandboxMetadata::new(
                self.bins.bin_dir.clone(),
                self.bins.major,
                self.bins.version.clone(),
            )
        });
        metadata.bin_dir = self.bins.bin_dir.clone();
        metadata.major = self.bins.major;
        metadata.version = self.bins.version.clone();
        for spec in nodes {
            let paths = NodePaths::new(&self.root, &spec.name);
            metadata.upsert(NodeRecord {
                name: spec.name.clone(),
                port: spec.port,
                db: spec.db.clone(),
                user: spec.user.clone(),
                password_set: spec.password.is_some(),
                tls: spec.tls,
                data_dir: paths.data,
                log_file: paths.log,
            });
        }
        // Recorded before any server starts, so `down` finds servers of a half-done `up`.
        metadata.write(&self.root)?;
        let ca = if nodes.iter().any(|spec| spec.tls) {
            let ca = SandboxCa::open_or_create(&self.root)?;
            for spec in nodes.iter().filter(|spec| spec.tls) {
                let (cert, key) = client_files(&self.root.join(TLS_DIR), &spec.user);
                if !cert.is_file() || !key.is_file() {
                    ca.issue_pgconverge_client(&spec.user)?;
                }
            }
            Some(ca)
        } else {
            None
        };

        let results: Vec<Result<(), SandboxError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = nodes
                .iter()
                .map(|spec| {
                    let recorded = previous.as_ref().and_then(|m| m.node(&spec.name));
                    let new_user = &new_user;
                    let ca = ca.as_ref();
                    scope.spawn(move || self.ensure_node(spec, recorded, mesh_size, new_user, ca))
                })
                .collect();
            handles
                .into_iter()
                .zip(nodes)
                .map(|(handle, spec)| {
                    handle.join().unwrap_or_else(|_| {
                        Err(SandboxError::io(
                            format!("bringing up sandbox node {}", spec.name),
                            std::io::Error::other("the worker thread panicked"),
                        ))
                    })
                })
                .collect()
        });
        for result in results {
            result?;
        }

        let statuses = self.status()?;
        Ok(nodes
            .iter()
            .filter_map(|spec| statuses.iter().find(|s| s.name == spec.name).cloned())
            .collect())
    }

    /// Stops every server the sandbox records (fast shutdown); returns the names of those
    /// that were running. Data directories are kept for the next `up`.
    pub fn down(&self) -> Result<Vec<String>, SandboxError> {
        let Some(metadata) = SandboxMetadata::read(&self.root)? else {
            return Ok(Vec::new());
        };
        let results: Vec<Result<Option<String>, SandboxError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = metadata
                .nodes
                .iter()
                .map(|record| {
                    let bin_dir = &metadata.bin_dir;
                    scope.spawn(move || {
                        let paths = NodePaths::of_record(record);
                        let stopped = self.stop_paths(&record.name, &paths, bin_dir)?;
                        Ok(stopped.then(|| record.name.clone()))
                    })
                })
                .collect();
            handles
                .into_iter()
                .zip(&metadata.nodes)
                .map(|(handle, record)| {
                    handle.join().unwrap_or_else(|_| {
                        Err(SandboxError::io(
                            format!("stopping sandbox node {}", record.name),
                            std::io::Error::other("the worker thread panicked"),
                        ))
                    })
                })
                .collect()
        });
        let mut stopped = Vec::new();
        for result in results {
            if let Some(name) = result? {
                stopped.push(name);
            }
        }
        Ok(stopped)
    }

    /// `down`, then removes the sandbox directory with every node's data.
    pub fn destroy(&self) -> Result<Vec<String>, SandboxError> {
        let stopped = self.down()?;
        match std::fs::remove_dir_all(&self.root) {
            Ok(()) => Ok(stopped),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(stopped),
            Err(e) => Err(SandboxError::io(
                format!("removing {}", self.root.display()),
                e,
            )),
        }
    }

    /// Every recorded node, running or not, in the order they were first brought up.
    pub fn status(&self) -> Result<Vec<NodeStatus>, SandboxError> {
        let Some(metadata) = SandboxMetadata::read(&self.root)? else {
            return Ok(Vec::new());
        };
        Ok(metadata
            .nodes
            .iter()
            .map(|record| {
                let pid = process::running_postmaster(&record.data_dir);
                NodeStatus {
                    name: record.name.clone(),
                    port: record.port,
                    db: record.db.clone(),
                    user: record.user.clone(),
                    data_dir: record.data_dir.clone(),
                    log_file: record.log_file.clone(),
                    pid,
                    running: pid.is_some(),
                    version: metadata.version.clone(),
                }
            })
            .collect())
    }

    /// Fast shutdown of one node; nothing happens when it is not running.
    pub fn stop_node(&self, name: &str) -> Result<(), SandboxError> {
        let (metadata, record) = self.recorded_node(name)?;
        self.stop_paths(name, &NodePaths::of_record(&record), &metadata.bin_dir)
            .map(|_| ())
    }

    /// Starts one recorded node that is stopped (or was killed).
    pub fn start_node(&self, name: &str) -> Result<(), SandboxError> {
        let (metadata, record) = self.recorded_node(name)?;
        let paths = NodePaths::of_record(&record);
        let user = ServerUser::owner_of(&paths.data)?;
        self.start_paths(name, record.port, &paths, &user, &metadata.bin_dir)
    }

    /// Simulates a crash: SIGKILL to the postmaster and then to all its processes, so no
    /// connection to the node survives. Returns when they are all gone.
    pub fn kill_node(&self, name: &str) -> Result<(), SandboxError> {
        let (_, record) = self.recorded_node(name)?;
        let pid = process::running_postmaster(&record.data_dir).ok_or_else(|| {
            SandboxError::NotRunning {
                node: name.to_string(),
            }
        })?;
        let stop_failed = |reason: String| SandboxError::StopFailed {
            node: name.to_string(),
            pid,
            reason,
        };
        // Stopped first so it cannot fork a process we would miss, nor restart crashed ones.
        process::send_signal(pid, Signal::SIGSTOP).map_err(stop_failed)?;
        let children = process::children_of(pid);
        process::send_signal(pid, Signal::SIGKILL).map_err(stop_failed)?;
        for &child in &children {
            // A child may already be gone; only the end state matters.
            let _ = process::send_signal(child, Signal::SIGKILL);
        }
        let mut all = children;
        all.push(pid);
        if !process::wait_for_exit(&all, Duration::from_secs(15)) {
            return Err(stop_failed(
                "processes still alive 15s after SIGKILL".to_string(),
            ));
        }
        Ok(())
    }

    fn recorded_node(&self, name: &str) -> Result<(SandboxMetadata, NodeRecord), SandboxError> {
        let metadata =
            SandboxMetadata::read(&self.root)?.ok_or_else(|| SandboxError::UnknownNode {
                name: name.to_string(),
                known: format!("nothing, {} has no sandbox", self.root.display()),
            })?;
        let record = metadata
            .node(name)
            .cloned()
            .ok_or_else(|| SandboxError::UnknownNode {
                name: name.to_string(),
                known: metadata.node_names(),
            })?;
        Ok((metadata, record))
    }

    fn create_root(&self) -> Result<(), SandboxError> {
        // Directories created here must be searchable by the server user whatever the umask.
        let missing: Vec<PathBuf> = self
            .root
            .ancestors()
            .take_while(|dir| !dir.exists())
            .map(Path::to_path_buf)
            .collect();
        std::fs::create_dir_all(&self.root)
            .map_err(|e| SandboxError::io(format!("creating {}", self.root.display()), e))?;
        for dir in missing {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
                .map_err(|e| SandboxError::io(format!("chmod 755 {}", dir.display()), e))?;
        }
        Ok(())
    }

    fn check_binaries_usable_by(&self, user: &ServerUser) -> Result<(), SandboxError> {
        let postgres = self.bins.program("postgres");
        let output = process::command_as(&postgres, user, &self.root)
            .arg("--version")
            .output();
        match output {
            Ok(output) if output.status.success() => Ok(()),
            Ok(output) => Err(SandboxError::NotAccessible {
                user: user.name.clone(),
                path: postgres,
                reason: process::describe_output(&output),
            }),
            Err(e) => Err(SandboxError::NotAccessible {
                user: user.name.clone(),
                path: postgres,
                reason: e.to_string(),
            }),
        }
    }

    fn check_data_major(&self, name: &str, paths: &NodePaths) -> Result<(), SandboxError> {
        let Ok(text) = std::fs::read_to_string(paths.data.join("PG_VERSION")) else {
            return Ok(());
        };
        match text.trim().parse::<u32>() {
            Ok(major) if major == self.bins.major => Ok(()),
            Ok(major) => Err(SandboxError::MajorMismatch {
                node: name.to_string(),
                data_dir: paths.data.clone(),
                data_major: major,
                bin_dir: self.bins.bin_dir.clone(),
                bin_major: self.bins.major,
            }),
            Err(_) => Err(SandboxError::Metadata {
                path: paths.data.join("PG_VERSION"),
                reason: format!("unexpected content {:?}", text.trim()),
            }),
        }
    }

    fn ensure_node(
        &self,
        spec: &SandboxNodeSpec,
        recorded: Option<&NodeRecord>,
        mesh_size: usize,
        new_user: &ServerUser,
        ca: Option<&SandboxCa>,
    ) -> Result<(), SandboxError> {
        let paths = NodePaths::new(&self.root, &spec.name);
        let initialised = paths.data.join("PG_VERSION").is_file();
        let user = if initialised {
            ServerUser::owner_of(&paths.data)?
        } else {
            self.init_node(spec, &paths, new_user)?;
            new_user.clone()
        };
        let identity_changed = recorded.is_none_or(|r| {
            r.user != spec.user || r.db != spec.db || r.password_set != spec.password.is_some()
        });
        let needs_bootstrap = !initialised || identity_changed;
        if let (true, Some(ca)) = (spec.tls, ca) {
            ensure_node_certificates(ca, spec, &paths, &user)?;
        }
        let config_changed = self.write_config(spec, &paths, mesh_size, &user)?;
        if process::running_postmaster(&paths.data).is_some() {
            if !config_changed && !needs_bootstrap {
                return Ok(());
            }
            self.stop_paths(&spec.name, &paths, &self.bins.bin_dir)?;
        }
        if needs_bootstrap {
            self.bootstrap(spec, &paths, &user)?;
        }
        self.start_paths(&spec.name, spec.port, &paths, &user, &self.bins.bin_dir)
    }

    fn init_node(
        &self,
        spec: &SandboxNodeSpec,
        paths: &NodePaths,
        user: &ServerUser,
    ) -> Result<(), SandboxError> {
        // A data directory without PG_VERSION is what a failed initdb leaves behind.
        if paths.data.exists() {
            std::fs::remove_dir_all(&paths.data).map_err(|e| {
                SandboxError::io(format!("removing incomplete {}", paths.data.display()), e)
            })?;
        }
        std::fs::create_dir_all(&paths.dir)
            .map_err(|e| SandboxError::io(format!("creating {}", paths.dir.display()), e))?;
        std::fs::set_permissions(&paths.dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| SandboxError::io(format!("chmod 700 {}", paths.dir.display()), e))?;
        process::give_to(&paths.dir, user)?;

        let initdb = self.bins.program("initdb");
        let data = paths.data.to_string_lossy().into_owned();
        let args = [
            "-D",
            data.as_str(),
            "-U",
            spec.user.as_str(),
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            // Sandbox data is disposable; see settings.rs.
            "--no-sync",
            "--no-instructions",
        ];
        let output = process::command_as(&initdb, user, &paths.dir)
            .args(args)
            .output()
            .map_err(|e| SandboxError::io(format!("running {}", initdb.display()), e))?;
        if !output.status.success() {
            return Err(SandboxError::CommandFailed {
                node: spec.name.clone(),
                command: process::display_command(&initdb, &args),
                output: process::describe_output(&output),
            });
        }
        Ok(())
    }

    /// Writes pgconverge.conf, pg_hba.conf and the include line; true when any changed.
    fn write_config(
        &self,
        spec: &SandboxNodeSpec,
        paths: &NodePaths,
        mesh_size: usize,
        user: &ServerUser,
    ) -> Result<bool, SandboxError> {
        let mut server_settings = settings::server_settings(spec.port, mesh_size);
        let client_auth = if spec.tls {
            let files = NodeTlsFiles::of(&paths.dir);
            server_settings.push_str(&settings::tls_settings(
                &files.server_cert,
                &files.server_key,
                &files.root_cert,
            ));
            settings::client_auth_tls(&spec.user, spec.password.is_some())
        } else {
            settings::client_auth(spec.password.is_some())
        };
        let mut changed = write_if_different(
            &paths.data.join(settings::SETTINGS_FILE),
            &server_settings,
            user,
        )?;
        changed |= write_if_different(&paths.data.join("pg_hba.conf"), &client_auth, user)?;
        let conf_path = paths.data.join("postgresql.conf");
        let conf = std::fs::read_to_string(&conf_path)
            .map_err(|e| SandboxError::io(format!("reading {}", conf_path.display()), e))?;
        if let Some(with_include) = settings::with_include_line(&conf) {
            changed |= write_if_different(&conf_path, &with_include, user)?;
        }
        Ok(changed)
    }

    /// Creates the role and database in single-user mode: no client program is needed
    /// (the npm builds of 16 and 17 ship none) and no connection is opened.
    fn bootstrap(
        &self,
        spec: &SandboxNodeSpec,
        paths: &NodePaths,
        user: &ServerUser,
    ) -> Result<(), SandboxError> {
        let postgres = self.bins.program("postgres");
        let data = paths.data.to_string_lossy().into_owned();
        let args = [
            "--single",
            "-j",
            "-D",
            data.as_str(),
            // Statements may carry the password: never echo them into the output.
            "-c",
            "log_min_error_statement=panic",
            "postgres",
        ];
        let mut child = process::command_as(&postgres, user, &paths.dir)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| SandboxError::io(format!("running {}", postgres.display()), e))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(bootstrap_sql(spec).as_bytes())
                .map_err(|e| SandboxError::io("writing to postgres --single", e))?;
        }
        let output = child
            .wait_with_output()
            .map_err(|e| SandboxError::io("waiting for postgres --single", e))?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        let errors = bootstrap_errors(&stderr, &spec.db);
        if !output.status.success() || !errors.is_empty() {
            return Err(SandboxError::CommandFailed {
                node: spec.name.clone(),
                command: process::display_command(&postgres, &args),
                output: if errors.is_empty() {
                    process::describe_output(&output)
                } else {
                    errors.join("\n")
                },
            });
        }
        Ok(())
    }

    fn start_paths(
        &self,
        name: &str,
        port: u16,
        paths: &NodePaths,
        user: &ServerUser,
        bin_dir: &Path,
    ) -> Result<(), SandboxError> {
        if process::running_postmaster(&paths.data).is_some() {
            return Ok(());
        }
        // Its processes are all gone (stop and kill wait for that), so the lock is stale.
        process::remove_zombie_lock_file(&paths.data)?;
        if !process::port_is_free(port) {
            return Err(SandboxError::PortInUse {
                node: name.to_string(),
                port,
            });
        }
        let pg_ctl = bin_dir.join("pg_ctl");
        let data = paths.data.to_string_lossy().into_owned();
        let log = paths.log.to_string_lossy().into_owned();
        let args = [
            "start",
            "-D",
            data.as_str(),
            "-l",
            log.as_str(),
            "-w",
            "-t",
            PG_CTL_TIMEOUT_SECS,
        ];
        let start_failed = |reason: String| SandboxError::StartFailed {
            node: name.to_string(),
            port,
            reason,
            log: paths.log.clone(),
            log_tail: process::log_tail(&paths.log, LOG_TAIL_LINES),
        };
        let output = process::command_as(&pg_ctl, user, &paths.dir)
            .args(args)
            .output()
            .map_err(|e| start_failed(format!("cannot run {}: {e}", pg_ctl.display())))?;
        if !output.status.success() {
            return Err(start_failed(format!(
                "`{}` failed with {}",
                process::display_command(&pg_ctl, &args),
                process::describe_output(&output)
            )));
        }
        if process::running_postmaster(&paths.data).is_none() {
            return Err(start_failed(
                "pg_ctl reported success but no postmaster is running".to_string(),
            ));
        }
        Ok(())
    }

    /// Stops the server of one data directory; true when one was running.
    fn stop_paths(
        &self,
        name: &str,
        paths: &NodePaths,
        bin_dir: &Path,
    ) -> Result<bool, SandboxError> {
        let Some(pid) = process::running_postmaster(&paths.data) else {
            return Ok(false);
        };
        let pg_ctl = bin_dir.join("pg_ctl");
        let data = paths.data.to_string_lossy().into_owned();
        let mut pg_ctl_problem = String::new();
        match ServerUser::owner_of(&paths.data) {
            Ok(user) => {
                let result = process::command_as(&pg_ctl, &user, &paths.dir)
                    .args([
                        "stop",
                        "-D",
                        data.as_str(),
                        "-m",
                        "fast",
                        "-w",
                        "-t",
                        PG_CTL_TIMEOUT_SECS,
                    ])
                    .output();
                match result {
                    Ok(output) if !output.status.success() => {
                        pg_ctl_problem = process::describe_output(&output);
                    }
                    Ok(_) => {}
                    Err(e) => pg_ctl_problem = format!("cannot run {}: {e}", pg_ctl.display()),
                }
            }
            Err(e) => pg_ctl_problem = e.to_string(),
        }
        if !process::is_alive(pid) {
            return Ok(true);
        }
        // pg_ctl could not do it (binaries gone, pid file unreadable): signal the postmaster.
        let stop_failed = |reason: String| SandboxError::StopFailed {
            node: name.to_string(),
            pid,
            reason,
        };
        process::send_signal(pid, Signal::SIGINT).map_err(stop_failed)?;
        if process::wait_for_exit(&[pid], Duration::from_secs(30)) {
            return Ok(true);
        }
        process::send_signal(pid, Signal::SIGKILL).map_err(stop_failed)?;
        if process::wait_for_exit(&[pid], Duration::from_secs(5)) {
            return Ok(true);
        }
        Err(stop_failed(format!(
            "pg_ctl stop: {pg_ctl_problem}; still alive after SIGINT and SIGKILL"
        )))
    }
}

/// The node's server certificate (issued once) and its subscriptions' client certificate
/// for the sandbox role.
fn ensure_node_certificates(
    ca: &SandboxCa,
    spec: &SandboxNodeSpec,
    paths: &NodePaths,
    owner: &ServerUser,
) -> Result<(), SandboxError> {
    let files = NodeTlsFiles::of(&paths.dir);
    if !files.server_cert.is_file() || !files.server_key.is_file() || !files.root_cert.is_file() {
        ca.issue_node(&files, owner)?;
    }
    let (cert, key) = files.client(&spec.user);
    if !cert.is_file() || !key.is_file() {
        ca.issue_client(&spec.user, &cert, &key, Some(owner))?;
    }
    Ok(())
}

/// `n` loopback ports that were free a moment ago, never the same one twice per process.
pub fn free_ports(n: usize) -> Result<Vec<u16>, SandboxError> {
    process::free_ports(n)
}

fn write_if_different(path: &Path, content: &str, user: &ServerUser) -> Result<bool, SandboxError> {
    if std::fs::read_to_string(path).is_ok_and(|existing| existing == content) {
        return Ok(false);
    }
    std::fs::write(path, content)
        .map_err(|e| SandboxError::io(format!("writing {}", path.display()), e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| SandboxError::io(format!("chmod 600 {}", path.display()), e))?;
    process::give_to(path, user)?;
    Ok(true)
}

/// Rejects specs that would break a path, a config file or the single-user session.
pub fn validate_specs(nodes: &[SandboxNodeSpec]) -> Result<(), SandboxError> {
    let invalid = |node: &str, reason: String| SandboxError::InvalidNode {
        node: node.to_string(),
        reason,
    };
    for (i, spec) in nodes.iter().enumerate() {
        let name = spec.name.as_str();
        if name.is_empty()
            || name.len() > MAX_IDENTIFIER_BYTES
            || name.starts_with('-')
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(invalid(
                name,
                "a node name must be 1-63 letters, digits, '_' or '-' (it names a directory)"
                    .to_string(),
            ));
        }
        if spec.port == 0 {
            return Err(invalid(name, "port 0 is not a port".to_string()));
        }
        for (what, value) in [("user", &spec.user), ("db", &spec.db)] {
            if value.is_empty() || value.len() > MAX_IDENTIFIER_BYTES {
                return Err(invalid(name, format!("{what} must be 1-63 bytes long")));
            }
            if value.contains(['\0', '\n', '\r']) {
                return Err(invalid(
                    name,
                    format!("{what} must not contain NUL or line breaks"),
                ));
            }
        }
        if let Some(password) = &spec.password {
            if password.is_empty() {
                return Err(invalid(
                    name,
                    "an empty password; leave it out for trust authentication".to_string(),
                ));
            }
            if password.contains(['\0', '\n', '\r']) {
                return Err(invalid(
                    name,
                    "the password must not contain NUL or line breaks".to_string(),
                ));
            }
        }
        for other in &nodes[..i] {
            if other.name == spec.name {
                return Err(invalid(name, "the name is used twice".to_string()));
            }
            if other.port == spec.port {
                return Err(invalid(
                    name,
                    format!("port {} is also given to node {}", spec.port, other.name),
                ));
            }
        }
    }
    Ok(())
}

/// Statements for `postgres --single -j`: each ends with `;` and an empty line. They are
/// idempotent, so a changed node can be bootstrapped again.
fn bootstrap_sql(spec: &SandboxNodeSpec) -> String {
    let role = quote_ident(&spec.user);
    let create_role = format!(
        "BEGIN IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = {}) \
         THEN CREATE ROLE {role} SUPERUSER LOGIN; END IF; END",
        quote_literal(&spec.user)
    );
    let password = spec
        .password
        .as_deref()
        .map_or_else(|| "NULL".to_string(), quote_literal);
    let mut statements = vec![
        format!("DO {}", quote_literal(&create_role)),
        format!("ALTER ROLE {role} WITH SUPERUSER LOGIN PASSWORD {password}"),
    ];
    if !["postgres", "template0", "template1"].contains(&spec.db.as_str()) {
        statements.push(format!(
            "CREATE DATABASE {} OWNER {role}",
            quote_ident(&spec.db)
        ));
    }
    statements
        .iter()
        .map(|s| format!("{s};\n\n"))
        .collect::<String>()
}

/// Error lines of a single-user session, except the database already existing.
fn bootstrap_errors(stderr: &str, db: &str) -> Vec<String> {
    let already_exists = format!("database {} already exists", name_as_in_messages(db));
    stderr
        .lines()
        .filter(|line| {
            line.contains("ERROR:") || line.contains("FATAL:") || line.contains("PANIC:")
        })
        .filter(|line| !line.contains(&already_exists))
        .map(str::to_string)
        .collect()
}

/// How PostgreSQL's messages show a name: in double quotes, unescaped.
fn name_as_in_messages(name: &str) -> String {
    format!("\"{name}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, port: u16) -> SandboxNodeSpec {
        SandboxNodeSpec {
            name: name.to_string(),
            port,
            db: "app".to_string(),
            user: "pgc".to_string(),
            password: None,
            tls: false,
        }
    }

    #[test]
    fn accepts_ordinary_specs() {
        assert!(validate_specs(&[spec("n1", 15401), spec("node-2_b", 15402)]).is_ok());
        assert!(validate_specs(&[]).is_ok());
    }

    #[test]
    fn rejects_names_that_would_escape_the_sandbox_directory() {
        for name in [
            "",
            "../x",
            "a/b",
            ".hidden",
            "-flag",
            "sp ace",
            &"x".repeat(64),
        ] {
            let err = validate_specs(&[spec(name, 15401)]).expect_err(name);
            assert!(
                matches!(err, SandboxError::InvalidNode { .. }),
                "{name}: {err}"
            );
        }
    }

    #[test]
    fn rejects_duplicate_names_and_ports() {
        let err = validate_specs(&[spec("n1", 15401), spec("n1", 15402)]).expect_err("dup name");
        assert!(err.to_string().contains("used twice"), "{err}");
        let err = validate_specs(&[spec("n1", 15401), spec("n2", 15401)]).expect_err("dup port");
        assert!(
            err.to_string()
                .contains("port 15401 is also given to node n1"),
            "{err}"
        );
    }

    #[test]
    fn rejects_line_breaks_and_empty_passwords() {
        let mut bad = spec("n1", 15401);
        bad.password = Some("a\nb".to_string());
        assert!(validate_specs(&[bad]).is_err());
        let mut empty = spec("n1", 15401);
        empty.password = Some(String::new());
        assert!(validate_specs(&[empty]).is_err());
        let mut user = spec("n1", 15401);
        user.user = "a\rb".to_string();
        assert!(validate_specs(&[user]).is_err());
    }

    #[test]
    fn bootstrap_sql_quotes_names_and_password() {
        let mut node = spec("n1", 15401);
        node.user = "Odd\"User".to_string();
        node.db = "my db".to_string();
        node.password = Some("it's secret".to_string());
        let sql = bootstrap_sql(&node);
        assert!(
            sql.contains(
                "WHERE rolname = ''Odd\"User'') THEN CREATE ROLE \"Odd\"\"User\" SUPERUSER LOGIN"
            ),
            "{sql}"
        );
        assert!(
            sql.contains(
                "ALTER ROLE \"Odd\"\"User\" WITH SUPERUSER LOGIN PASSWORD 'it''s secret';\n\n"
            ),
            "{sql}"
        );
        assert!(
            sql.contains("CREATE DATABASE \"my db\" OWNER \"Odd\"\"User\";\n\n"),
            "{sql}"
        );
        assert!(sql.starts_with("DO 'BEGIN IF NOT EXISTS"), "{sql}");
        assert_eq!(sql.matches(";\n\n").count(), 3);
    }

    #[test]
    fn bootstrap_sql_without_password_or_new_database() {
        let mut node = spec("n1", 15401);
        node.db = "postgres".to_string();
        let sql = bootstrap_sql(&node);
        assert!(sql.contains("PASSWORD NULL;"), "{sql}");
        assert!(!sql.contains("CREATE DATABASE"), "{sql}");
    }

    #[test]
    fn existing_database_is_not_a_bootstrap_error() {
        let stderr = "2026-01-01 UTC [1] ERROR:  database \"app\" already exists\n\
                      2026-01-01 UTC [1] LOG:  checkpoint starting: shutdown immediate\n";
        assert!(bootstrap_errors(stderr, "app").is_empty());
        let other = "2026-01-01 UTC [1] ERROR:  role \"x\" does not exist\n";
        assert_eq!(bootstrap_errors(other, "app").len(), 1);
        assert_eq!(bootstrap_errors(stderr, "other").len(), 1);
    }
}
