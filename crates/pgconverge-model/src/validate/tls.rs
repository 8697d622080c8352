//! Checks of the TLS settings: what pgconverge's own connections need (a CA for the verifying
//! modes, a key with every certificate) and what each node's subscriptions need (paths the
//! subscriber's server can read, a certificate for certificate authentication).

use crate::config::{NodeConfig, SubscriptionAuth, SubscriptionTlsConfig};
use crate::source_map::{quoted, FieldPath};

use super::{Findings, Layout, Parts};

const VERIFYING: &[&str] = &["verify-ca", "verify-full"];
/// Modes under which a connection is certainly encrypted (a client certificate is sent).
const ENCRYPTED: &[&str] = &["require", "verify-ca", "verify-full"];

/// Where a setting that applies to a node was written: on the node or in the cluster's `tls`.
struct Origin<'a> {
    node: FieldPath,
    cluster: FieldPath,
    set_on_node: &'a dyn Fn(&str) -> bool,
}

impl Origin<'_> {
    fn of(&self, field: &str) -> FieldPath {
        if (self.set_on_node)(field) {
            self.node.key(field)
        } else {
            self.cluster.key(field)
        }
    }
}

pub(super) fn check(parts: &Parts<'_>, layout: &dyn Layout, findings: &mut Findings<'_>) {
    let file = layout.nodes_file();
    let defaults = parts.tls.cloned().unwrap_or_default();
    let tls_path = FieldPath::root().key("tls");
    check_mode(
        defaults.sslmode.as_deref(),
        &tls_path.key("sslmode"),
        file,
        findings,
    );
    if let Some(sub) = &defaults.subscription {
        let at = tls_path.key("subscription").key("sslmode");
        check_mode(sub.sslmode.as_deref(), &at, file, findings);
    }
    let resolved: Vec<NodeConfig> = parts
        .nodes
        .iter()
        .map(|(_, node)| node.with_tls_defaults(&defaults))
        .collect();
    for (&(n, written), node) in parts.nodes.iter().zip(&resolved) {
        let own = |field: &str| match field {
            "sslmode" => written.sslmode.is_some(),
            "sslrootcert" => written.sslrootcert.is_some(),
            "sslcert" => written.sslcert.is_some(),
            _ => written.sslkey.is_some(),
        };
        let client = Origin {
            node: layout.node(n),
            cluster: tls_path.clone(),
            set_on_node: &own,
        };
        check_client(node, &client, file, findings);

        let own_sub = written.subscription_tls.clone().unwrap_or_default();
        let own_sub_field = |field: &str| sub_field(&own_sub, field);
        let subscription = Origin {
            node: layout.node(n).key("subscription_tls"),
            cluster: tls_path.key("subscription"),
            set_on_node: &own_sub_field,
        };
        if let Some(sub) = &written.subscription_tls {
            check_mode(
                sub.sslmode.as_deref(),
                &subscription.node.key("sslmode"),
                file,
                findings,
            );
        }
        check_subscription(node, &resolved, &subscription, file, findings);
    }
}

fn sub_field(sub: &SubscriptionTlsConfig, field: &str) -> bool {
    match field {
        "sslmode" => sub.sslmode.is_some(),
        "sslrootcert" => sub.sslrootcert.is_some(),
        "sslcert" => sub.sslcert.is_some(),
        "sslkey" => sub.sslkey.is_some(),
        _ => sub.auth.is_some(),
    }
}

fn check_mode(mode: Option<&str>, at: &FieldPath, file: usize, findings: &mut Findings<'_>) {
    if let Some(mode) = mode {
        if !super::SSL_MODES.contains(&mode) {
            findings.error(
                file,
                at,
                format!(
                    "unknown sslmode {}; expected one of {}",
                    quoted(mode),
                    super::backticked(super::SSL_MODES)
                ),
            );
        }
    }
}

/// pgconverge's own connection to `node`.
fn check_client(node: &NodeConfig, at: &Origin<'_>, file: usize, findings: &mut Findings<'_>) {
    let mode = node.sslmode.as_deref().unwrap_or("prefer");
    if VERIFYING.contains(&mode) && node.sslrootcert.is_none() {
        findings.error(
            file,
            &at.of("sslmode"),
            format!(
                "sslmode `{mode}` checks the server's certificate against a CA: set `sslrootcert` \
                 (on the node or in `tls`) to the CA file pgconverge reads"
            ),
        );
    }
    check_pair(
        node.sslcert.as_deref(),
        node.sslkey.as_deref(),
        at,
        file,
        findings,
    );
    if node.sslcert.is_some() && mode == "disable" {
        findings.error(
            file,
            &at.of("sslcert"),
            "a client certificate is only sent over TLS, and sslmode is `disable`",
        );
    }
    for (field, value) in [
        ("sslrootcert", &node.sslrootcert),
        ("sslcert", &node.sslcert),
        ("sslkey", &node.sslkey),
    ] {
        if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
            findings.error(file, &at.of(field), format!("`{field}` is an empty path"));
        }
    }
}

fn check_pair(
    cert: Option<&str>,
    key: Option<&str>,
    at: &Origin<'_>,
    file: usize,
    findings: &mut Findings<'_>,
) {
    match (cert, key) {
        (Some(_), None) => findings.error(
            file,
            &at.of("sslcert"),
            "`sslcert` needs `sslkey`: the private key of the certificate",
        ),
        (None, Some(_)) => findings.error(
            file,
            &at.of("sslkey"),
            "`sslkey` needs `sslcert`: the certificate the key belongs to",
        ),
        _ => {}
    }
}

/// The subscriptions `node` makes to every other node.
fn check_subscription(
    node: &NodeConfig,
    all: &[NodeConfig],
    at: &Origin<'_>,
    file: usize,
    findings: &mut Findings<'_>,
) {
    let sub = node.subscription_tls();
    check_pair(
        sub.sslcert.as_deref(),
        sub.sslkey.as_deref(),
        at,
        file,
        findings,
    );
    for (field, value) in [
        ("sslrootcert", &sub.sslrootcert),
        ("sslcert", &sub.sslcert),
        ("sslkey", &sub.sslkey),
    ] {
        if let Some(path) = value {
            if !path.starts_with('/') {
                findings.error(
                    file,
                    &at.of(field),
                    format!(
                        "{} must be an absolute path: node {}'s PostgreSQL server reads it, from \
                         its own data directory",
                        quoted(path),
                        quoted(&node.name)
                    ),
                );
            }
        }
    }
    let certificate = sub.auth() == SubscriptionAuth::Certificate;
    if certificate && (sub.sslcert.is_none() || sub.sslkey.is_none()) {
        findings.error(
            file,
            &at.of("auth"),
            "`auth: certificate` needs `sslcert` and `sslkey`: the client certificate the \
             subscriber's server presents instead of a password",
        );
    }
    for peer in all.iter().filter(|p| p.name != node.name) {
        // Without a mode of their own, subscriptions use the one pgconverge uses for the peer.
        let mode = sub
            .sslmode
            .as_deref()
            .or(peer.sslmode.as_deref())
            .unwrap_or("prefer");
        if VERIFYING.contains(&mode) && sub.sslrootcert.is_none() {
            findings.error(
                file,
                &at.of("sslmode"),
                format!(
                    "the subscription of {} to {} uses sslmode `{mode}`{}: set \
                     `subscription_tls.sslrootcert` to the CA file on {}'s server",
                    quoted(&node.name),
                    quoted(&peer.name),
                    if sub.sslmode.is_none() {
                        " (the publisher's)"
                    } else {
                        ""
                    },
                    quoted(&node.name)
                ),
            );
            break;
        }
        if (certificate || sub.sslcert.is_some()) && !ENCRYPTED.contains(&mode) {
            findings.error(
                file,
                &at.of(if certificate { "auth" } else { "sslcert" }),
                format!(
                    "the subscription of {} to {} would send its client certificate with \
                     sslmode `{mode}`, which may not encrypt: use `require`, `verify-ca` or \
                     `verify-full` in `subscription_tls.sslmode`",
                    quoted(&node.name),
                    quoted(&peer.name)
                ),
            );
            break;
        }
    }
}
