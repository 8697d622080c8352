//! Who is running pgconverge (user, host, pid) and whether a recorded pid is still alive.

use std::path::Path;

/// `user@host` for the current process, as recorded in lock files.
pub(crate) fn current_user_at_host() -> String {
    format!("{}@{}", current_user(), current_host())
}

fn current_user() -> String {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .map(|value| value.trim().to_owned())
        .find(|value| !value.is_empty())
        .or_else(user_from_passwd)
        .unwrap_or_else(|| "unknown-user".to_owned())
}

/// The account name of this process's uid, for environments (containers, cron, CI) that do
/// not set `USER`. The uid is the owner of `/proc/self`; its name comes from `/etc/passwd`,
/// or is `uid<N>` when the uid has no entry there.
fn user_from_passwd() -> Option<String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let uid = std::fs::metadata("/proc/self").ok()?.uid();
        let uid_text = uid.to_string();
        let name = std::fs::read_to_string("/etc/passwd")
            .ok()
            .and_then(|passwd| {
                passwd.lines().find_map(|line| {
                    let mut fields = line.split(':');
                    let name = fields.next()?;
                    let uid_field = fields.nth(1)?;
                    (uid_field == uid_text && !name.is_empty()).then(|| name.to_owned())
                })
            });
        Some(name.unwrap_or_else(|| format!("uid{uid}")))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

pub(crate) fn current_host() -> String {
    let from_files = ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok());
    let from_environment = ["HOSTNAME", "COMPUTERNAME"]
        .iter()
        .filter_map(|name| std::env::var(name).ok());
    from_files
        .chain(from_environment)
        .map(|value| value.trim().to_owned())
        .find(|value| !value.is_empty())
        .unwrap_or_else(|| "unknown-host".to_owned())
}

/// Whether `pid` names a live process on this host, when that can be known.
///
/// Uses procfs, so it answers only where `/proc/self` exists (Linux); elsewhere `None`.
pub(crate) fn local_process_is_alive(pid: u32) -> Option<bool> {
    if !Path::new("/proc/self").exists() {
        return None;
    }
    Some(Path::new("/proc").join(pid.to_string()).exists())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_at_host_has_both_parts() {
        let who = current_user_at_host();
        let (user, host) = who.rsplit_once('@').expect("an @ separator");
        assert!(!user.is_empty() && !host.is_empty(), "{who}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn passwd_lookup_names_the_process_owner() {
        use std::os::unix::fs::MetadataExt;
        let uid = std::fs::metadata("/proc/self").expect("procfs").uid();
        let name = user_from_passwd().expect("a name on Linux");
        assert!(!name.is_empty());
        if uid == 0 {
            assert_eq!(name, "root");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn own_pid_is_alive_and_an_impossible_pid_is_not() {
        assert_eq!(local_process_is_alive(std::process::id()), Some(true));
        // Linux caps pids at 2^22, so this one cannot exist.
        assert_eq!(local_process_is_alive(0x7fff_fff0), Some(false));
    }
}
