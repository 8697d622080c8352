//! Finding PostgreSQL server binaries (initdb, pg_ctl, postgres) of a supported major version.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::error::SandboxError;

/// Subscriptions use `WITH (origin = none)`, added in PostgreSQL 16.
pub const MIN_SUPPORTED_MAJOR: u32 = 16;

/// Environment variable naming a PostgreSQL bin directory.
pub const PG_BIN_ENV: &str = "PGCONVERGE_PG_BIN";

/// Programs a bin directory must hold for the sandbox to manage servers with it.
const REQUIRED_PROGRAMS: [&str; 3] = ["postgres", "initdb", "pg_ctl"];

/// A bin directory holding a PostgreSQL server of a known version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgBinaries {
    pub bin_dir: PathBuf,
    pub major: u32,
    /// As `postgres --version` reports it, e.g. `18.6`.
    pub version: String,
}

impl PgBinaries {
    /// Checks that `bin_dir` holds postgres, initdb and pg_ctl and asks postgres its version.
    pub fn probe(bin_dir: &Path) -> Result<PgBinaries, String> {
        for program in REQUIRED_PROGRAMS {
            if !bin_dir.join(program).is_file() {
                return Err(format!("{program} is missing"));
            }
        }
        let postgres = bin_dir.join("postgres");
        let output = Command::new(&postgres)
            .arg("--version")
            .output()
            .map_err(|e| format!("cannot run {}: {e}", postgres.display()))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(format!(
                "`postgres --version` failed ({}): {}",
                output.status,
                stderr.trim()
            ));
        }
        let (major, version) = parse_postgres_version(&stdout).ok_or_else(|| {
            format!(
                "unrecognised `postgres --version` output {:?}",
                stdout.trim()
            )
        })?;
        Ok(PgBinaries {
            bin_dir: bin_dir.to_path_buf(),
            major,
            version,
        })
    }

    /// Path of a program in the bin directory.
    pub fn program(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }
}

/// Parses `postgres (PostgreSQL) 18.6` (possibly followed by a distribution suffix) into
/// (major, version). Before PostgreSQL 10 the major was two numbers; those parse as 9.
pub fn parse_postgres_version(output: &str) -> Option<(u32, String)> {
    let line = output.lines().find(|l| l.contains("(PostgreSQL)"))?;
    let (_, after) = line.split_once("(PostgreSQL)")?;
    let version = after.split_whitespace().next()?;
    let digits: String = version.chars().take_while(|c| c.is_ascii_digit()).collect();
    let major = digits.parse().ok()?;
    Some((major, version.to_string()))
}

/// Where a candidate bin directory came from; named in messages.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CandidateSource {
    Explicit,
    Env,
    ProjectInstall(String),
    PgConfig,
    PostgresOnPath,
}

impl CandidateSource {
    fn describe(&self) -> String {
        match self {
            CandidateSource::Explicit => "--pg-bin".to_string(),
            CandidateSource::Env => PG_BIN_ENV.to_string(),
            CandidateSource::ProjectInstall(major) => format!(".pg/{major}"),
            CandidateSource::PgConfig => "pg_config on PATH".to_string(),
            CandidateSource::PostgresOnPath => "postgres on PATH".to_string(),
        }
    }

    /// A directory the user named must work; the ones found by looking around may not.
    fn is_user_choice(&self) -> bool {
        matches!(self, CandidateSource::Explicit | CandidateSource::Env)
    }
}

/// Finds PostgreSQL ≥ 16 binaries. Looks, in order, at `explicit` (`--pg-bin`), the
/// `PGCONVERGE_PG_BIN` environment variable, `<project_root>/.pg/<major>/bin` from the
/// highest major down, `pg_config --bindir` and `postgres` on PATH. A candidate older than
/// 16 is passed over when a later one is new enough.
pub fn find_binaries(
    explicit: Option<&Path>,
    project_root: Option<&Path>,
) -> Result<PgBinaries, SandboxError> {
    let env_dir = std::env::var_os(PG_BIN_ENV).filter(|v| !v.is_empty());
    let path_var = std::env::var_os("PATH");
    find_binaries_from(explicit, env_dir, project_root, path_var)
}

fn find_binaries_from(
    explicit: Option<&Path>,
    env_dir: Option<OsString>,
    project_root: Option<&Path>,
    path_var: Option<OsString>,
) -> Result<PgBinaries, SandboxError> {
    let candidates = candidates(explicit, env_dir, project_root, path_var.as_deref());
    let mut searched = Vec::new();
    let mut too_old = Vec::new();
    let mut seen = Vec::new();
    for (source, dir) in candidates {
        let key = dir.canonicalize().unwrap_or_else(|_| dir.clone());
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        match PgBinaries::probe(&dir) {
            Ok(found) if found.major >= MIN_SUPPORTED_MAJOR => return Ok(found),
            Ok(found) => too_old.push(format!(
                "PostgreSQL {} in {} ({})",
                found.version,
                dir.display(),
                source.describe()
            )),
            Err(reason) if source.is_user_choice() => {
                return Err(SandboxError::InvalidBinDir {
                    source_name: source.describe(),
                    path: dir,
                    reason,
                })
            }
            Err(reason) => searched.push(format!(
                "{} ({}): {reason}",
                dir.display(),
                source.describe()
            )),
        }
    }
    if !too_old.is_empty() {
        return Err(SandboxError::VersionTooOld { found: too_old });
    }
    if searched.is_empty() {
        searched.push(
            "no --pg-bin, no PGCONVERGE_PG_BIN, no .pg/ in the project, \
             no pg_config or postgres on PATH"
                .to_string(),
        );
    }
    Err(SandboxError::BinariesNotFound { searched })
}

fn candidates(
    explicit: Option<&Path>,
    env_dir: Option<OsString>,
    project_root: Option<&Path>,
    path_var: Option<&std::ffi::OsStr>,
) -> Vec<(CandidateSource, PathBuf)> {
    let mut out = Vec::new();
    if let Some(path) = explicit {
        out.push((CandidateSource::Explicit, bin_dir_of(path)));
    }
    if let Some(dir) = env_dir {
        out.push((CandidateSource::Env, bin_dir_of(Path::new(&dir))));
    }
    if let Some(root) = project_root {
        for major in project_install_majors(&root.join(".pg")) {
            out.push((
                CandidateSource::ProjectInstall(major.to_string()),
                root.join(".pg").join(major.to_string()).join("bin"),
            ));
        }
    }
    if let Some(pg_config) = find_on_path("pg_config", path_var) {
        if let Some(dir) = pg_config_bindir(&pg_config) {
            out.push((CandidateSource::PgConfig, dir));
        }
    }
    if let Some(postgres) = find_on_path("postgres", path_var) {
        if let Some(dir) = postgres.parent() {
            out.push((CandidateSource::PostgresOnPath, dir.to_path_buf()));
        }
    }
    out
}

/// `--pg-bin` may name the bin directory or a program inside it.
fn bin_dir_of(path: &Path) -> PathBuf {
    if path.is_file() {
        if let Some(parent) = path.parent() {
            return parent.to_path_buf();
        }
    }
    path.to_path_buf()
}

/// Numeric subdirectories of `.pg/`, highest first.
fn project_install_majors(pg_root: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir(pg_root) else {
        return Vec::new();
    };
    let mut majors: Vec<u32> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .collect();
    majors.sort_unstable_by(|a, b| b.cmp(a));
    majors
}

fn find_on_path(program: &str, path_var: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    let path_var = path_var?;
    std::env::split_paths(path_var)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

fn pg_config_bindir(pg_config: &Path) -> Option<PathBuf> {
    let output = Command::new(pg_config).arg("--bindir").output().ok()?;
    if !output.status.success() {
        return None;
    }
    let dir = String::from_utf8_lossy(&output.stdout).trim().to_string();
    (!dir.is_empty()).then(|| PathBuf::from(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn parses_plain_and_distribution_versions() {
        assert_eq!(
            parse_postgres_version("postgres (PostgreSQL) 18.6\n"),
            Some((18, "18.6".to_string()))
        );
        assert_eq!(
            parse_postgres_version("postgres (PostgreSQL) 16.14 (Debian 16.14-1.pgdg120+1)"),
            Some((16, "16.14".to_string()))
        );
        assert_eq!(
            parse_postgres_version("postgres (PostgreSQL) 9.6.24"),
            Some((9, "9.6.24".to_string()))
        );
        assert_eq!(
            parse_postgres_version("postgres (PostgreSQL) 19beta1"),
            Some((19, "19beta1".to_string()))
        );
        assert_eq!(parse_postgres_version("bash: postgres: not found"), None);
        assert_eq!(parse_postgres_version("postgres (PostgreSQL) devel"), None);
    }

    /// A scratch directory with fake bin directories whose `postgres` prints a version.
    struct FakeInstalls {
        root: PathBuf,
    }

    impl FakeInstalls {
        fn new(label: &str) -> Self {
            let root = std::env::temp_dir().join(format!(
                "pgconverge-sandbox-binaries-{label}-{}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&root);
            std::fs::create_dir_all(&root).expect("create scratch dir");
            FakeInstalls { root }
        }

        fn bin_dir(&self, relative: &str, version: &str) -> PathBuf {
            let dir = self.root.join(relative);
            std::fs::create_dir_all(&dir).expect("create fake bin dir");
            for program in REQUIRED_PROGRAMS {
                let script = dir.join(program);
                std::fs::write(
                    &script,
                    format!("#!/bin/sh\necho '{program} (PostgreSQL) {version}'\n"),
                )
                .expect("write fake program");
                std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
                    .expect("chmod fake program");
            }
            dir
        }
    }

    impl Drop for FakeInstalls {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }

    #[test]
    fn explicit_directory_wins() {
        let fake = FakeInstalls::new("explicit");
        let explicit = fake.bin_dir("explicit/bin", "17.2");
        fake.bin_dir("project/.pg/18/bin", "18.6");
        let found = find_binaries_from(
            Some(&explicit),
            None,
            Some(&fake.root.join("project")),
            None,
        )
        .expect("found");
        assert_eq!(found.major, 17);
        assert_eq!(found.bin_dir, explicit);
    }

    #[test]
    fn explicit_program_path_means_its_directory() {
        let fake = FakeInstalls::new("program");
        let dir = fake.bin_dir("bin", "16.3");
        let found =
            find_binaries_from(Some(&dir.join("postgres")), None, None, None).expect("found");
        assert_eq!(found.bin_dir, dir);
        assert_eq!(found.version, "16.3");
    }

    #[test]
    fn project_install_uses_highest_major() {
        let fake = FakeInstalls::new("highest");
        fake.bin_dir("project/.pg/16/bin", "16.14");
        fake.bin_dir("project/.pg/18/bin", "18.6");
        fake.bin_dir("project/.pg/17/bin", "17.10");
        let found =
            find_binaries_from(None, None, Some(&fake.root.join("project")), None).expect("found");
        assert_eq!(found.major, 18);
    }

    #[test]
    fn old_candidate_is_passed_over_for_a_later_new_one() {
        let fake = FakeInstalls::new("passover");
        let old = fake.bin_dir("old/bin", "15.8");
        fake.bin_dir("project/.pg/17/bin", "17.10");
        let found = find_binaries_from(
            None,
            Some(old.into_os_string()),
            Some(&fake.root.join("project")),
            None,
        )
        .expect("found");
        assert_eq!(found.major, 17);
    }

    #[test]
    fn only_old_candidates_give_a_message_about_origin_none_and_the_installer() {
        let fake = FakeInstalls::new("old");
        let old = fake.bin_dir("usr/lib/postgresql/15/bin", "15.8");
        let path_var = std::env::join_paths([&old]).expect("join PATH");
        let err = find_binaries_from(None, None, None, Some(path_var)).expect_err("too old");
        let message = err.to_string();
        assert!(
            matches!(err, SandboxError::VersionTooOld { .. }),
            "{message}"
        );
        assert!(message.contains("15.8"), "{message}");
        assert!(message.contains("origin = none"), "{message}");
        assert!(message.contains("scripts/install-postgres.sh"), "{message}");
        assert!(message.contains("PGCONVERGE_PG_BIN"), "{message}");
    }

    #[test]
    fn explicit_directory_without_server_is_an_error() {
        let fake = FakeInstalls::new("empty");
        let empty = fake.root.join("empty");
        std::fs::create_dir_all(&empty).expect("mkdir");
        fake.bin_dir("project/.pg/18/bin", "18.6");
        let err = find_binaries_from(Some(&empty), None, Some(&fake.root.join("project")), None)
            .expect_err("invalid");
        assert!(
            matches!(err, SandboxError::InvalidBinDir { ref source_name, .. } if source_name == "--pg-bin"),
            "{err}"
        );
    }

    #[test]
    fn nothing_found_says_how_to_install() {
        let fake = FakeInstalls::new("nothing");
        let err = find_binaries_from(None, None, Some(&fake.root), None).expect_err("none");
        assert!(matches!(err, SandboxError::BinariesNotFound { .. }));
        assert!(err.to_string().contains("scripts/install-postgres.sh"));
    }
}
