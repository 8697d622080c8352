//! `pg_hba.conf` field syntax: database and role names, and addresses.

use std::net::IpAddr;

/// A database or role name as a `pg_hba.conf` field: double-quoted unless plain, which also
/// keeps a name such as `all` or `replication` from being read as the keyword.
pub fn quote_hba_name(name: &str) -> String {
    let plain = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !matches!(
            name,
            "all" | "sameuser" | "samerole" | "samegroup" | "replication"
        );
    if plain {
        name.to_string()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// A host as a `pg_hba.conf` ADDRESS field: an IP address with its full-length mask (`/32`,
/// `/128`), a host name as it is (the server refuses a host name with a mask).
pub fn hba_address(host: &str) -> String {
    match host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        Ok(IpAddr::V4(ip)) => format!("{ip}/32"),
        Ok(IpAddr::V6(ip)) => format!("{ip}/128"),
        Err(_) => host.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_cidr_for_ips_and_bare_for_host_names() {
        assert_eq!(hba_address("10.0.1.5"), "10.0.1.5/32");
        assert_eq!(hba_address("::1"), "::1/128");
        assert_eq!(hba_address("[fd00::5]"), "fd00::5/128");
        assert_eq!(hba_address("db2.internal"), "db2.internal");
    }

    #[test]
    fn names_are_quoted_unless_plain() {
        assert_eq!(quote_hba_name("app"), "app");
        assert_eq!(quote_hba_name("all"), "\"all\"");
        assert_eq!(quote_hba_name("replication"), "\"replication\"");
        assert_eq!(quote_hba_name("My DB"), "\"My DB\"");
    }
}
