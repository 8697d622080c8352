//! Finds the password for a node: environment, config, a password command or the pgpass file.
//!
//! The password never leaves this module except wrapped in [`Secret`], whose `Debug` and
//! `Display` print `********`, so it cannot end up in a log, a plan or an error by accident.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use pgconverge_model::NodeConfig;
use pgconverge_sql::REDACTED;

/// A password. Printing it shows `********`; [`Secret::expose`] is the only way to read it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The clear-text password, for handing to the server.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("node {node}: password_env names {variable}, which is not set")]
    PasswordEnvMissing { node: String, variable: String },
    #[error("node {node}: password_command is empty")]
    PasswordCommandEmpty { node: String },
    #[error("node {node}: cannot run password_command `{program}`: {source}")]
    PasswordCommandSpawn {
        node: String,
        program: String,
        #[source]
        source: std::io::Error,
    },
    /// The command's output is deliberately not part of this error: it may hold the password.
    #[error("node {node}: password_command `{program}` failed ({status})")]
    PasswordCommandFailed {
        node: String,
        program: String,
        status: String,
    },
    #[error("node {node}: password_command `{program}` printed something that is not UTF-8")]
    PasswordCommandNotUtf8 { node: String, program: String },
    #[error(
        "password file {path} is readable by group or others; restrict it with `chmod 0600 {path}` \
         (libpq ignores such a file too)"
    )]
    PgpassPermissions { path: String },
    #[error("cannot read password file {path}: {source}")]
    PgpassRead {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// The environment variable that overrides every other password source for a node:
/// `PGCONVERGE_<NAME>_PASSWORD`, the name uppercased and anything not alphanumeric made `_`.
pub fn node_password_env_var(node_name: &str) -> String {
    let name: String = node_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("PGCONVERGE_{name}_PASSWORD")
}

/// Finds the password for `node`, first match wins:
/// 1. env `PGCONVERGE_<NODENAME>_PASSWORD`;
/// 2. the variable named by `node.password_env` (an error when it is not set);
/// 3. the standard output of `node.password_command` (line ending removed);
/// 4. `node.password`;
/// 5. env `PGPASSWORD`;
/// 6. the pgpass file (`PGPASSFILE`, else `~/.pgpass`).
///
/// `env` reads environment variables; tests pass a map instead of the process environment.
/// An empty variable counts as unset, as libpq does for `PGPASSWORD`. `Ok(None)` means no
/// source had a password (the server may not need one).
pub fn resolve_password(
    node: &NodeConfig,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Secret>, CredentialError> {
    let non_empty_env = |name: &str| env(name).filter(|value| !value.is_empty());

    if let Some(value) = non_empty_env(&node_password_env_var(&node.name)) {
        return Ok(Some(Secret(value)));
    }
    if let Some(variable) = &node.password_env {
        return match non_empty_env(variable) {
            Some(value) => Ok(Some(Secret(value))),
            None => Err(CredentialError::PasswordEnvMissing {
                node: node.name.clone(),
                variable: variable.clone(),
            }),
        };
    }
    if let Some(argv) = &node.password_command {
        return run_password_command(&node.name, argv).map(Some);
    }
    if let Some(password) = &node.password {
        return Ok(Some(Secret(password.clone())));
    }
    if let Some(value) = non_empty_env("PGPASSWORD") {
        return Ok(Some(Secret(value)));
    }
    let Some(path) = pgpass_path(env) else {
        return Ok(None);
    };
    let Some(contents) = read_pgpass(&path)? else {
        return Ok(None);
    };
    Ok(pgpass_lookup(&contents, &node.host, node.port(), &node.db, &node.user).map(Secret))
}

fn run_password_command(node: &str, argv: &[String]) -> Result<Secret, CredentialError> {
    let Some((program, args)) = argv.split_first() else {
        return Err(CredentialError::PasswordCommandEmpty {
            node: node.to_string(),
        });
    };
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|source| CredentialError::PasswordCommandSpawn {
            node: node.to_string(),
            program: program.clone(),
            source,
        })?;
    if !output.status.success() {
        return Err(CredentialError::PasswordCommandFailed {
            node: node.to_string(),
            program: program.clone(),
            status: output.status.to_string(),
        });
    }
    let stdout =
        String::from_utf8(output.stdout).map_err(|_| CredentialError::PasswordCommandNotUtf8 {
            node: node.to_string(),
            program: program.clone(),
        })?;
    // Only the line ending goes: a password may begin or end with spaces.
    Ok(Secret(stdout.trim_end_matches(['\n', '\r']).to_string()))
}

fn pgpass_path(env: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(path) = env("PGPASSFILE").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    env("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| Path::new(&home).join(".pgpass"))
}

/// The file's contents, `None` when it does not exist.
fn read_pgpass(path: &Path) -> Result<Option<String>, CredentialError> {
    let display = path.display().to_string();
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(CredentialError::PgpassRead {
                path: display,
                source,
            })
        }
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if metadata.is_file() && metadata.permissions().mode() & 0o077 != 0 {
            return Err(CredentialError::PgpassPermissions { path: display });
        }
    }
    if !metadata.is_file() {
        return Ok(None);
    }
    std::fs::read_to_string(path)
        .map(Some)
        .map_err(|source| CredentialError::PgpassRead {
            path: display,
            source,
        })
}

/// The password of the first pgpass line matching the connection. Lines are
/// `host:port:database:username:password`; `*` in the first four fields matches anything; `\`
/// escapes `:` and `\`; lines starting with `#` are comments. A Unix-socket directory host
/// matches `localhost`, as in libpq.
pub fn pgpass_lookup(
    contents: &str,
    host: &str,
    port: u16,
    db: &str,
    user: &str,
) -> Option<String> {
    let host = if host.starts_with('/') {
        "localhost"
    } else {
        host
    };
    let port = port.to_string();
    contents.lines().find_map(|line| {
        let line = line.trim_end_matches('\r');
        if line.starts_with('#') || line.trim().is_empty() {
            return None;
        }
        let fields = split_pgpass_line(line)?;
        let matches = |pattern: &str, value: &str| pattern == "*" || pattern == value;
        (matches(&fields[0], host)
            && matches(&fields[1], &port)
            && matches(&fields[2], db)
            && matches(&fields[3], user))
        .then(|| fields[4].clone())
    })
}

/// Splits a pgpass line into its five unescaped fields; `None` when it has fewer. As in libpq,
/// the password ends at the next unescaped `:`.
fn split_pgpass_line(line: &str) -> Option<[String; 5]> {
    let mut fields: Vec<String> = Vec::with_capacity(5);
    let mut current = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(escaped) = chars.next() {
                    current.push(escaped);
                }
            }
            ':' if fields.len() < 4 => fields.push(std::mem::take(&mut current)),
            ':' => break,
            _ => current.push(c),
        }
    }
    if fields.len() < 4 {
        return None;
    }
    fields.push(current);
    fields.try_into().ok()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn node() -> NodeConfig {
        NodeConfig {
            name: "eu-west".into(),
            host: "db1.example".into(),
            port: Some(5433),
            peer_host: None,
            peer_port: None,
            db: "app".into(),
            user: "pgc".into(),
            password: None,
            password_env: None,
            password_command: None,
            sslmode: None,
            sslrootcert: None,
            sslcert: None,
            sslkey: None,
            subscription_tls: None,
            external: false,
            donor: None,
            merge_rows: false,
        }
    }

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn resolved(node: &NodeConfig, pairs: &[(&str, &str)]) -> Option<String> {
        resolve_password(node, &env_of(pairs))
            .expect("password resolves")
            .map(|secret| secret.expose().to_string())
    }

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(label: &str) -> Self {
            let path = std::env::temp_dir().join(format!(
                "pgconverge-credentials-{label}-{}",
                std::process::id()
            ));
            let _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).expect("create temp dir");
            TempDir(path)
        }

        fn pgpass(&self, contents: &str, mode: u32) -> String {
            let path = self.0.join("pgpass");
            std::fs::write(&path, contents).expect("write pgpass");
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                    .expect("chmod pgpass");
            }
            path.display().to_string()
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn secret_is_redacted_when_printed() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret}"), "********");
        assert_eq!(format!("{secret:?}"), "********");
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn node_env_var_name_is_uppercased_and_sanitised() {
        assert_eq!(
            node_password_env_var("eu-west.1"),
            "PGCONVERGE_EU_WEST_1_PASSWORD"
        );
        assert_eq!(node_password_env_var("n1"), "PGCONVERGE_N1_PASSWORD");
    }

    #[test]
    fn node_env_var_wins_over_everything() {
        let mut node = node();
        node.password = Some("from-config".into());
        node.password_env = Some("MY_PW".into());
        node.password_command = Some(vec!["false".into()]);
        let env = [
            ("PGCONVERGE_EU_WEST_PASSWORD", "from-node-env"),
            ("MY_PW", "from-password-env"),
            ("PGPASSWORD", "from-pgpassword"),
        ];
        assert_eq!(resolved(&node, &env).as_deref(), Some("from-node-env"));
    }

    #[test]
    fn password_env_comes_second() {
        let mut node = node();
        node.password = Some("from-config".into());
        node.password_env = Some("MY_PW".into());
        let env = [("MY_PW", "from-password-env"), ("PGPASSWORD", "x")];
        assert_eq!(resolved(&node, &env).as_deref(), Some("from-password-env"));
    }

    #[test]
    fn unset_password_env_is_an_error_naming_node_and_variable() {
        let mut node = node();
        node.password_env = Some("MY_PW".into());
        node.password = Some("from-config".into());
        let error = resolve_password(&node, &env_of(&[])).expect_err("missing variable");
        let message = error.to_string();
        assert!(
            message.contains("eu-west") && message.contains("MY_PW"),
            "{message}"
        );
    }

    #[test]
    fn password_command_output_without_line_ending() {
        let mut node = node();
        node.password_command = Some(vec!["printf".into(), " pw with spaces \n".into()]);
        node.password = Some("from-config".into());
        assert_eq!(
            resolved(&node, &[("PGPASSWORD", "x")]).as_deref(),
            Some(" pw with spaces ")
        );
    }

    #[test]
    fn failing_password_command_reports_status_not_output() {
        let mut node = node();
        node.password_command = Some(vec![
            "sh".into(),
            "-c".into(),
            "echo leaked-secret; exit 3".into(),
        ]);
        let error = resolve_password(&node, &env_of(&[])).expect_err("command fails");
        let message = error.to_string();
        assert!(message.contains("eu-west"), "{message}");
        assert!(message.contains("exit status: 3"), "{message}");
        assert!(!message.contains("leaked-secret"), "{message}");
    }

    #[test]
    fn missing_password_command_is_an_error() {
        let mut node = node();
        node.password_command = Some(vec!["/nonexistent/pgconverge-password-helper".into()]);
        let error = resolve_password(&node, &env_of(&[])).expect_err("cannot spawn");
        assert!(
            matches!(error, CredentialError::PasswordCommandSpawn { .. }),
            "{error}"
        );
        node.password_command = Some(vec![]);
        let error = resolve_password(&node, &env_of(&[])).expect_err("empty argv");
        assert!(
            matches!(error, CredentialError::PasswordCommandEmpty { .. }),
            "{error}"
        );
    }

    #[test]
    fn config_password_before_pgpassword() {
        let mut node = node();
        node.password = Some("from-config".into());
        assert_eq!(
            resolved(&node, &[("PGPASSWORD", "x")]).as_deref(),
            Some("from-config")
        );
    }

    #[test]
    fn pgpassword_before_pgpass_file() {
        let dir = TempDir::new("order");
        let file = dir.pgpass("*:*:*:*:from-file\n", 0o600);
        let env = [
            ("PGPASSWORD", "from-pgpassword"),
            ("PGPASSFILE", file.as_str()),
        ];
        assert_eq!(resolved(&node(), &env).as_deref(), Some("from-pgpassword"));
    }

    #[test]
    fn empty_variables_count_as_unset() {
        let dir = TempDir::new("empty");
        let file = dir.pgpass("*:*:*:*:from-file\n", 0o600);
        let env = [
            ("PGCONVERGE_EU_WEST_PASSWORD", ""),
            ("PGPASSWORD", ""),
            ("PGPASSFILE", file.as_str()),
        ];
        assert_eq!(resolved(&node(), &env).as_deref(), Some("from-file"));
    }

    #[test]
    fn pgpass_file_from_pgpassfile_and_home() {
        let dir = TempDir::new("home");
        let contents = "# comment\ndb1.example:5433:app:pgc:from-file\n";
        let file = dir.pgpass(contents, 0o600);
        assert_eq!(
            resolved(&node(), &[("PGPASSFILE", file.as_str())]).as_deref(),
            Some("from-file")
        );
        std::fs::rename(&file, dir.0.join(".pgpass")).expect("move to home");
        let home = dir.0.display().to_string();
        assert_eq!(
            resolved(&node(), &[("HOME", home.as_str())]).as_deref(),
            Some("from-file")
        );
    }

    #[test]
    fn no_source_gives_none() {
        let dir = TempDir::new("none");
        let home = dir.0.display().to_string();
        assert_eq!(resolved(&node(), &[("HOME", home.as_str())]), None);
        assert_eq!(resolved(&node(), &[]), None);
    }

    #[test]
    fn pgpass_open_to_others_is_refused() {
        let dir = TempDir::new("perm");
        let file = dir.pgpass("*:*:*:*:pw\n", 0o644);
        let error = resolve_password(&node(), &env_of(&[("PGPASSFILE", file.as_str())]))
            .expect_err("permissions too open");
        assert!(
            matches!(error, CredentialError::PgpassPermissions { .. }),
            "{error}"
        );
    }

    #[test]
    fn pgpass_first_matching_line_wins_with_wildcards() {
        let contents = "\
otherhost:5433:app:pgc:wrong-host
db1.example:5432:app:pgc:wrong-port
db1.example:*:other:pgc:wrong-db
*:5433:app:*:right
*:*:*:*:fallback
";
        assert_eq!(
            pgpass_lookup(contents, "db1.example", 5433, "app", "pgc").as_deref(),
            Some("right")
        );
        assert_eq!(
            pgpass_lookup(contents, "x", 1, "y", "z").as_deref(),
            Some("fallback")
        );
    }

    #[test]
    fn pgpass_escapes_and_password_end() {
        let contents = "h\\:1:5432:d\\\\b:u:p\\:w\\\\x:ignored\r\n";
        assert_eq!(
            pgpass_lookup(contents, "h:1", 5432, "d\\b", "u").as_deref(),
            Some("p:w\\x")
        );
        let socket = "localhost:5432:d:u:via-socket\n";
        assert_eq!(
            pgpass_lookup(socket, "/tmp", 5432, "d", "u").as_deref(),
            Some("via-socket")
        );
    }

    #[test]
    fn pgpass_short_lines_and_comments_are_skipped() {
        let contents = "#*:*:*:*:commented\nh:5432:d\n\n*:*:*:*:ok\n";
        assert_eq!(
            pgpass_lookup(contents, "h", 5432, "d", "u").as_deref(),
            Some("ok")
        );
    }

    #[test]
    fn pgpass_wildcard_only_as_whole_field() {
        let contents = "db*:*:*:*:partial\n";
        assert_eq!(pgpass_lookup(contents, "db1", 5432, "d", "u"), None);
    }
}
