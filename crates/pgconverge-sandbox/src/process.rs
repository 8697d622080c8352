//! OS plumbing: the unprivileged user servers run as, pids, signals, ports and log tails.

use std::collections::HashSet;
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{self, Signal};
use nix::unistd::{Pid, User};

use crate::error::SandboxError;

/// User created for the servers when the machine has no `postgres` user.
const DEDICATED_USER: &str = "pgconverge";

/// The OS identity a server process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

impl ServerUser {
    /// Whoever owns `path` (a node directory the sandbox handed over to its server user).
    pub fn owner_of(path: &Path) -> Result<ServerUser, SandboxError> {
        let meta = std::fs::metadata(path)
            .map_err(|e| SandboxError::io(format!("reading owner of {}", path.display()), e))?;
        let name = User::from_uid(meta.uid().into())
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| format!("uid {}", meta.uid()));
        Ok(ServerUser {
            name,
            uid: meta.uid(),
            gid: meta.gid(),
        })
    }

    fn from_user(user: User) -> ServerUser {
        ServerUser {
            name: user.name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        }
    }

    /// Ourselves, when we are not root.
    fn current() -> ServerUser {
        let uid = nix::unistd::geteuid();
        let name = User::from_uid(uid)
            .ok()
            .flatten()
            .map(|u| u.name)
            .unwrap_or_else(|| format!("uid {uid}"));
        ServerUser {
            name,
            uid: uid.as_raw(),
            gid: nix::unistd::getegid().as_raw(),
        }
    }
}

pub fn running_as_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// initdb and postgres refuse to run as root. As root the servers run as `postgres` when that
/// user exists, else as a dedicated system user (created here), else as `nobody`; otherwise
/// they run as ourselves.
pub fn server_user_for_new_nodes() -> Result<ServerUser, SandboxError> {
    if !running_as_root() {
        return Ok(ServerUser::current());
    }
    for name in ["postgres", DEDICATED_USER] {
        if let Some(user) = lookup_user(name)? {
            return Ok(ServerUser::from_user(user));
        }
    }
    let created = Command::new("useradd")
        .args([
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            DEDICATED_USER,
        ])
        .output();
    if matches!(&created, Ok(output) if output.status.success()) {
        if let Some(user) = lookup_user(DEDICATED_USER)? {
            return Ok(ServerUser::from_user(user));
        }
    }
    match lookup_user("nobody")? {
        Some(user) => Ok(ServerUser::from_user(user)),
        None => Err(SandboxError::ServerUser(
            "no `postgres` or `nobody` user exists and `useradd pgconverge` failed".to_string(),
        )),
    }
}

fn lookup_user(name: &str) -> Result<Option<User>, SandboxError> {
    User::from_name(name)
        .map_err(|e| SandboxError::ServerUser(format!("looking up user {name}: {e}")))
}

/// A command that runs as `user` (dropping root when we are root) in directory `cwd`, which
/// that user can enter: the caller's working directory may be closed to it.
pub fn command_as(program: &Path, user: &ServerUser, cwd: &Path) -> Command {
    let mut command = Command::new(program);
    command.current_dir(cwd);
    if running_as_root() && user.uid != 0 {
        command.uid(user.uid).gid(user.gid);
    }
    // Settings of the caller's own PostgreSQL (any PG* variable: PGSSLCERT, PGPASSFILE, …)
    // must not leak into the sandbox servers, whose libpq reads them for subscriptions.
    for (var, _) in std::env::vars_os() {
        if var.to_string_lossy().starts_with("PG") {
            command.env_remove(var);
        }
    }
    // Nor the caller's home: libpq in a server falls back to ~/.postgresql/ for client
    // certificates, and a server started by root would read root's.
    command.env("HOME", cwd);
    command
}

/// Hands `path` to the server user (a no-op when that is ourselves).
pub fn give_to(path: &Path, user: &ServerUser) -> Result<(), SandboxError> {
    if !running_as_root() {
        return Ok(());
    }
    std::os::unix::fs::chown(path, Some(user.uid), Some(user.gid))
        .map_err(|e| SandboxError::io(format!("chown {} to {}", path.display(), user.name), e))
}

/// Checks that `user` can search every directory from / down to `dir`.
pub fn check_reachable(dir: &Path, user: &ServerUser) -> Result<(), SandboxError> {
    if user.uid == 0 {
        return Ok(());
    }
    for ancestor in dir.ancestors().collect::<Vec<_>>().into_iter().rev() {
        let Ok(meta) = std::fs::metadata(ancestor) else {
            // Not created yet: the sandbox creates it with a searchable mode.
            continue;
        };
        let mode = meta.mode();
        let searchable = if meta.uid() == user.uid {
            mode & 0o100 != 0
        } else if meta.gid() == user.gid {
            mode & 0o010 != 0
        } else {
            mode & 0o001 != 0
        };
        if !searchable {
            return Err(SandboxError::NotAccessible {
                user: user.name.clone(),
                path: dir.to_path_buf(),
                reason: format!(
                    "{} (mode {:o}, owner uid {}) is not searchable",
                    ancestor.display(),
                    mode & 0o7777,
                    meta.uid()
                ),
            });
        }
    }
    Ok(())
}

/// The postmaster pid from `<data>/postmaster.pid`, if that process is alive.
pub fn running_postmaster(data_dir: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(data_dir.join("postmaster.pid")).ok()?;
    let pid: u32 = text.lines().next()?.trim().parse().ok()?;
    (is_alive(pid) && is_postgres(pid)).then_some(pid)
}

/// Removes a postmaster.pid whose process died but is not yet reaped (a zombie): postgres
/// takes the zombie for a live postmaster and refuses to start. Returns true when removed.
pub fn remove_zombie_lock_file(data_dir: &Path) -> Result<bool, SandboxError> {
    let lock_file = data_dir.join("postmaster.pid");
    let Some(pid) = std::fs::read_to_string(&lock_file)
        .ok()
        .and_then(|text| text.lines().next()?.trim().parse::<u32>().ok())
    else {
        return Ok(false);
    };
    let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| process_state(&stat))
        .is_some_and(|state| state == 'Z' || state == 'X');
    if !zombie {
        return Ok(false);
    }
    std::fs::remove_file(&lock_file)
        .map_err(|e| SandboxError::io(format!("removing stale {}", lock_file.display()), e))?;
    Ok(true)
}

/// Alive and not a zombie (a killed postmaster may linger unreaped under a container's init).
pub fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => process_state(&stat).is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => {
            // No procfs: signal 0 tells whether the pid exists.
            i32::try_from(pid).is_ok_and(|raw| signal::kill(Pid::from_raw(raw), None).is_ok())
        }
    }
}

/// Guards against a stale postmaster.pid whose pid now belongs to another program.
fn is_postgres(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/comm")) {
        Ok(comm) => comm.trim() == "postgres",
        Err(_) => true,
    }
}

/// The state letter of a `/proc/<pid>/stat` line; the command name may contain spaces and
/// parentheses, so the fields are read after the last `)`.
pub fn process_state(stat: &str) -> Option<char> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().next()?.chars().next()
}

fn parent_pid(stat: &str) -> Option<u32> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Pids whose parent is `pid` (a postmaster's backends and auxiliary processes).
pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|stat| parent_pid(&stat))
                == Some(pid)
        })
        .collect()
}

pub fn send_signal(pid: u32, sig: Signal) -> Result<(), String> {
    let raw = i32::try_from(pid).map_err(|_| format!("pid {pid} out of range"))?;
    signal::kill(Pid::from_raw(raw), sig).map_err(|e| format!("kill -{sig} {pid}: {e}"))
}

/// Polls until every pid in `pids` is gone or `timeout` passes; true when all are gone.
pub fn wait_for_exit(pids: &[u32], timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if pids.iter().all(|&pid| !is_alive(pid)) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn port_is_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}

/// Ports handed out by [`free_ports`] in this process, never handed out twice.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// `n` distinct loopback ports that were free a moment ago (bound to 127.0.0.1:0 and
/// released), none of which this process handed out before.
pub fn free_ports(n: usize) -> Result<Vec<u16>, SandboxError> {
    let mut guard = HANDED_OUT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let handed_out = guard.get_or_insert_with(HashSet::new);
    // All listeners stay open until every port is chosen, so the kernel cannot repeat one.
    let mut listeners = Vec::with_capacity(n);
    let mut ports = Vec::with_capacity(n);
    let mut attempts = 0;
    while ports.len() < n {
        attempts += 1;
        if attempts > n * 50 + 100 {
            return Err(SandboxError::io(
                format!("finding {n} free ports on 127.0.0.1"),
                std::io::Error::other("the kernel kept returning ports already handed out"),
            ));
        }
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| SandboxError::io("binding 127.0.0.1:0 to find a free port", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| SandboxError::io("reading the port bound on 127.0.0.1:0", e))?
            .port();
        if handed_out.insert(port) {
            ports.push(port);
        }
        listeners.push(listener);
    }
    Ok(ports)
}

/// The last `lines` lines of a log file, or a note saying why there is none.
pub fn log_tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            let start = all.len().saturating_sub(lines);
            if all.is_empty() {
                "(log is empty)".to_string()
            } else {
                all[start..].join("\n")
            }
        }
        Err(e) => format!("(cannot read {}: {e})", path.display()),
    }
}

/// Output of a finished command, for error messages.
pub fn describe_output(output: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let text = format!("{}\n{}", stdout.trim(), stderr.trim());
    let text = text.trim();
    if text.is_empty() {
        format!("{} with no output", output.status)
    } else {
        format!("{}: {text}", output.status)
    }
}

pub fn display_command(program: &Path, args: &[&str]) -> String {
    let mut out = program.display().to_string();
    for arg in args {
        out.push(' ');
        out.push_str(arg);
    }
    out
}

pub fn absolute(path: PathBuf) -> PathBuf {
    let joined = if path.is_absolute() {
        path
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(&path))
            .unwrap_or(path)
    };
    // `./` parts say nothing, and the paths end up in configs people read.
    joined
        .components()
        .filter(|part| !matches!(part, std::path::Component::CurDir))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_command_name_with_spaces() {
        let stat = "4242 (postgres: walwriter) S 4200 4242 4242 0 -1";
        assert_eq!(process_state(stat), Some('S'));
        assert_eq!(parent_pid(stat), Some(4200));
        assert_eq!(process_state("17 (a) b) Z 1"), Some('Z'));
        assert_eq!(process_state("garbage"), None);
    }

    #[test]
    fn own_process_is_alive_and_its_child_is_listed() {
        assert!(is_alive(std::process::id()));
        let mut child = Command::new("sleep").arg("5").spawn().expect("spawn sleep");
        let listed = children_of(std::process::id()).contains(&child.id());
        child.kill().expect("kill sleep");
        child.wait().expect("reap sleep");
        assert!(listed);
        assert!(!is_alive(child.id()));
    }

    #[test]
    fn free_ports_are_distinct_and_bindable() {
        let first = free_ports(5).expect("ports");
        let second = free_ports(5).expect("ports");
        let all: HashSet<u16> = first.iter().chain(&second).copied().collect();
        assert_eq!(all.len(), 10);
        assert!(first.iter().all(|&p| port_is_free(p)));
    }

    #[test]
    fn port_held_by_a_listener_is_not_free() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
        let port = listener.local_addr().expect("addr").port();
        assert!(!port_is_free(port));
        // Not asserted after `drop(listener)`: another test of this binary, binding port 0 at
        // the same moment, may be given the released port.
    }

    #[test]
    fn log_tail_keeps_the_last_lines() {
        let path = std::env::temp_dir().join(format!("pgconverge-logtail-{}", std::process::id()));
        std::fs::write(&path, "a\nb\nc\nd\n").expect("write");
        let tail = log_tail(&path, 2);
        std::fs::remove_file(&path).expect("cleanup");
        assert_eq!(tail, "c\nd");
        assert!(log_tail(&path, 2).starts_with("(cannot read"));
    }

    #[test]
    fn a_closed_ancestor_is_reported() {
        let root = std::env::temp_dir().join(format!("pgconverge-reach-{}", std::process::id()));
        let inner = root.join("inner");
        std::fs::create_dir_all(&inner).expect("mkdir");
        let stranger = ServerUser {
            name: "stranger".into(),
            uid: 54_321,
            gid: 54_321,
        };
        std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .expect("chmod");
        let closed = check_reachable(&inner, &stranger);
        std::fs::set_permissions(&root, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .expect("chmod");
        let open = check_reachable(&inner, &stranger);
        std::fs::remove_dir_all(&root).expect("cleanup");
        assert!(
            matches!(closed, Err(SandboxError::NotAccessible { ref reason, .. }) if reason.contains("pgconverge-reach")),
            "{closed:?}"
        );
        assert!(open.is_ok(), "{open:?}");
    }
}
