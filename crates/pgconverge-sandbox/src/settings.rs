//! Server configuration the sandbox writes into each node's data directory.

use std::path::Path;

use pgconverge_sql::quote_hba_name;

/// Name of the file, inside the data directory, holding the sandbox's settings.
pub const SETTINGS_FILE: &str = "pgconverge.conf";

/// The line added to postgresql.conf so the sandbox settings override initdb's.
pub const INCLUDE_LINE: &str = "include 'pgconverge.conf'";

/// initdb's default; one more table sync in flight per subscription only speeds the copy.
const SYNC_WORKERS_PER_SUBSCRIPTION: u32 = 2;
/// PostgreSQL's default for max_parallel_apply_workers_per_subscription (16+).
const PARALLEL_APPLY_WORKERS_PER_SUBSCRIPTION: u32 = 2;
/// Slots and WAL senders beyond the mesh: pg_recvlogical, pg_basebackup, a joining node.
const TOOL_HEADROOM: u32 = 6;
/// The sandbox sizes every server for a mesh of at least this many nodes, so that nodes can
/// join a running sandbox without restarting the servers already in it (a restart would
/// disconnect every client writing to them).
pub const SANDBOX_MESH_HEADROOM: usize = 8;
/// PostgreSQL's default max_parallel_workers: parallel queries share the worker pool.
const PARALLEL_QUERY_WORKERS: u32 = 8;

/// Replication capacity of one node in a full mesh of `mesh_size` nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplicationCapacity {
    pub max_replication_slots: u32,
    pub max_wal_senders: u32,
    pub max_logical_replication_workers: u32,
    pub max_worker_processes: u32,
    pub max_sync_workers_per_subscription: u32,
}

impl ReplicationCapacity {
    /// Each node holds one slot per peer (the peer's subscription) and runs one apply worker
    /// per peer; during an initial copy every table sync adds a temporary slot on the
    /// publisher and a sync worker on the subscriber.
    pub fn for_mesh(mesh_size: usize) -> Self {
        let peers = u32::try_from(mesh_size.saturating_sub(1))
            .unwrap_or(u32::MAX / 16)
            .max(1);
        let slots = peers * (1 + SYNC_WORKERS_PER_SUBSCRIPTION) + TOOL_HEADROOM;
        let workers = peers
            * (1 + SYNC_WORKERS_PER_SUBSCRIPTION + PARALLEL_APPLY_WORKERS_PER_SUBSCRIPTION)
            + 2;
        ReplicationCapacity {
            max_replication_slots: slots,
            max_wal_senders: slots + 2,
            max_logical_replication_workers: workers,
            // + the logical replication launcher and parallel query workers.
            max_worker_processes: workers + 1 + PARALLEL_QUERY_WORKERS + 2,
            max_sync_workers_per_subscription: SYNC_WORKERS_PER_SUBSCRIPTION,
        }
    }
}

/// Contents of `pgconverge.conf` for a node listening on `port` in a mesh of `mesh_size`,
/// with room for the mesh to grow to [`SANDBOX_MESH_HEADROOM`] nodes.
pub fn server_settings(port: u16, mesh_size: usize) -> String {
    let capacity = ReplicationCapacity::for_mesh(mesh_size.max(SANDBOX_MESH_HEADROOM));
    format!(
        "# Written by `pgconverge sandbox up`; rewritten on every run.\n\
         listen_addresses = '127.0.0.1'\n\
         port = {port}\n\
         # Clients connect over TCP; no socket file (its path would be limited to 107 bytes).\n\
         unix_socket_directories = ''\n\
         wal_level = logical\n\
         track_commit_timestamp = on\n\
         max_replication_slots = {slots}\n\
         max_wal_senders = {senders}\n\
         max_logical_replication_workers = {lr_workers}\n\
         max_worker_processes = {workers}\n\
         max_sync_workers_per_subscription = {sync}\n\
         # A failed apply worker is retried after this long (default 5s).\n\
         wal_retrieve_retry_interval = '1s'\n\
         shared_buffers = '32MB'\n\
         # SANDBOX ONLY: sandbox data is disposable, so durability is traded for speed.\n\
         # Never copy these three lines to a real server.\n\
         fsync = off\n\
         synchronous_commit = off\n\
         full_page_writes = off\n",
        slots = capacity.max_replication_slots,
        senders = capacity.max_wal_senders,
        lr_workers = capacity.max_logical_replication_workers,
        workers = capacity.max_worker_processes,
        sync = capacity.max_sync_workers_per_subscription,
    )
}

/// Contents of `pg_hba.conf`: loopback only; trust without a password, SCRAM with one.
pub fn client_auth(password_required: bool) -> String {
    let method = if password_required {
        "scram-sha-256"
    } else {
        "trust"
    };
    format!(
        "# Written by `pgconverge sandbox up`; rewritten on every run.\n\
         # TYPE  DATABASE     USER  ADDRESS       METHOD\n\
         host    all          all   127.0.0.1/32  {method}\n\
         host    replication  all   127.0.0.1/32  {method}\n"
    )
}

/// Settings that turn TLS on with the node's certificate and the sandbox CA, which also
/// checks the certificates clients present.
pub fn tls_settings(server_cert: &Path, server_key: &Path, root_cert: &Path) -> String {
    format!(
        "ssl = on\n\
         ssl_cert_file = {}\n\
         ssl_key_file = {}\n\
         ssl_ca_file = {}\n\
         ssl_min_protocol_version = 'TLSv1.2'\n",
        conf_string(server_cert),
        conf_string(server_key),
        conf_string(root_cert)
    )
}

/// A path as a postgresql.conf string value: single-quoted, quotes and backslashes doubled
/// or escaped as the configuration file's lexer reads them.
fn conf_string(path: &Path) -> String {
    let text = path.to_string_lossy();
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
}

/// Contents of `pg_hba.conf` with TLS: loopback and TLS only, and a client certificate from
/// the sandbox CA whose CN is the role, always. The sandbox's own role logs in by that
/// certificate alone (or with its password as well, when it has one); any other role needs
/// its certificate and its password, which is what subscriptions owned by a non-superuser
/// need on PostgreSQL 16 to 18 (they must use a password).
pub fn client_auth_tls(user: &str, password_required: bool) -> String {
    let user = quote_hba_name(user);
    let own = if password_required {
        "scram-sha-256 clientcert=verify-full"
    } else {
        "cert"
    };
    format!(
        "# Written by `pgconverge sandbox up --tls`; rewritten on every run.\n\
         # TYPE   DATABASE     USER  ADDRESS       METHOD\n\
         hostssl  all          {user}  127.0.0.1/32  {own}\n\
         hostssl  replication  {user}  127.0.0.1/32  {own}\n\
         hostssl  all          all   127.0.0.1/32  scram-sha-256 clientcert=verify-full\n\
         hostssl  replication  all   127.0.0.1/32  scram-sha-256 clientcert=verify-full\n"
    )
}

/// postgresql.conf with the include line appended once.
pub fn with_include_line(postgresql_conf: &str) -> Option<String> {
    if postgresql_conf
        .lines()
        .any(|line| line.trim() == INCLUDE_LINE)
    {
        return None;
    }
    let mut out = postgresql_conf.to_string();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(INCLUDE_LINE);
    out.push('\n');
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_node_mesh_has_room_for_peers_table_syncs_and_tools() {
        let c = ReplicationCapacity::for_mesh(3);
        // 2 peers: 2 permanent slots + 2×2 table-sync slots + headroom.
        assert_eq!(c.max_replication_slots, 2 * 3 + TOOL_HEADROOM);
        assert!(c.max_wal_senders >= c.max_replication_slots);
        // Apply + sync + parallel apply workers for every peer.
        assert!(c.max_logical_replication_workers >= 2 * 5);
        assert!(
            c.max_worker_processes > c.max_logical_replication_workers + PARALLEL_QUERY_WORKERS
        );
    }

    #[test]
    fn capacity_grows_with_the_mesh() {
        let small = ReplicationCapacity::for_mesh(2);
        let large = ReplicationCapacity::for_mesh(10);
        assert!(large.max_replication_slots > small.max_replication_slots);
        assert!(large.max_logical_replication_workers > small.max_logical_replication_workers);
        // A lone node still accepts a subscription from a node that joins later.
        assert_eq!(
            ReplicationCapacity::for_mesh(1),
            ReplicationCapacity::for_mesh(2)
        );
        assert_eq!(
            ReplicationCapacity::for_mesh(0),
            ReplicationCapacity::for_mesh(2)
        );
    }

    #[test]
    fn a_growing_mesh_keeps_the_settings_servers_run_with() {
        // Settings that change would restart every running server of the sandbox.
        for mesh in 1..=SANDBOX_MESH_HEADROOM {
            assert_eq!(
                server_settings(15432, mesh),
                server_settings(15432, 1),
                "{mesh}"
            );
        }
        assert_ne!(
            server_settings(15432, SANDBOX_MESH_HEADROOM + 1),
            server_settings(15432, 1)
        );
    }

    #[test]
    fn settings_pin_loopback_port_and_logical_wal() {
        let conf = server_settings(15432, 3);
        assert!(conf.contains("listen_addresses = '127.0.0.1'\n"));
        assert!(conf.contains("port = 15432\n"));
        assert!(conf.contains("wal_level = logical\n"));
        assert!(conf.contains("track_commit_timestamp = on\n"));
        assert!(conf.contains("unix_socket_directories = ''\n"));
        assert!(conf.contains("SANDBOX ONLY"));
    }

    #[test]
    fn client_auth_uses_scram_only_with_a_password() {
        assert!(client_auth(false).contains("127.0.0.1/32  trust"));
        assert!(!client_auth(false).contains("scram"));
        let with_password = client_auth(true);
        assert!(with_password.contains("host    all          all   127.0.0.1/32  scram-sha-256"));
        assert!(with_password.contains("host    replication  all   127.0.0.1/32  scram-sha-256"));
        assert!(!with_password.contains("0.0.0.0"));
    }

    #[test]
    fn include_line_is_added_once() {
        let first = with_include_line("max_connections = 100").expect("added");
        assert_eq!(first, "max_connections = 100\ninclude 'pgconverge.conf'\n");
        assert_eq!(with_include_line(&first), None);
        assert_eq!(
            with_include_line("").as_deref(),
            Some("include 'pgconverge.conf'\n")
        );
    }
}
