//! Subscriptions to each peer's publication: created when missing (on a slot the publisher
//! creates), altered when connection, publication, origin or state differ, and detached and
//! dropped when pgconverge created them and their publisher left the config.

use std::collections::BTreeSet;

use pgconverge_model::catalog::SubscriptionCatalog;

use crate::address::ObjectAddress;
use crate::change::{Action, Change};
use crate::desired::DesiredSubscription;
use crate::diff::NodeDiffInput;

pub(super) fn diff(input: &NodeDiffInput<'_>) -> Vec<Change> {
    let mut out: Vec<Change> = input
        .desired
        .subscriptions
        .iter()
        .filter_map(|sub| match input.observed.subscriptions.get(&sub.name) {
            None => Some(created(input, sub)),
            Some(live) => altered(input, sub, live),
        })
        .collect();
    out.extend(dropped(input));
    out
}

fn address(name: &str) -> ObjectAddress {
    ObjectAddress::Subscription {
        name: name.to_string(),
    }
}

fn created(input: &NodeDiffInput<'_>, sub: &DesiredSubscription) -> Change {
    let mut c = input.change(
        address(&sub.name),
        Action::Create,
        vec![ddl::create_subscription(sub)],
    );
    c.transactional = false;
    let publisher_slots = input.cluster.get(&sub.publisher).map(|c| &c.slots);
    let mut reasons = Vec::new();
    if publisher_slots.is_some_and(|slots| slots.contains_key(&sub.name)) {
        reasons.push(format!(
            "reuses the existing slot {} on {}",
            sub.name, sub.publisher
        ));
    }
    reasons.extend(security_note(sub));
    if !reasons.is_empty() {
        c.reason = Some(reasons.join("; "));
    }
    c
}

/// How a subscription that certainly uses TLS is protected and where its credential lives,
/// so the plan says which mode it uses; `None` for one that may run without TLS.
fn security_note(sub: &DesiredSubscription) -> Option<String> {
    let spec = &sub.conninfo;
    let certificate = spec.password_of.is_none();
    let mode = spec.sslmode.as_deref().unwrap_or("prefer");
    if !matches!(mode, "require" | "verify-ca" | "verify-full") {
        return None;
    }
    Some(if certificate {
        format!("TLS {mode}, client certificate, no password stored")
    } else {
        format!("TLS {mode}, password stored in the subscription")
    })
}

/// The update bringing a live subscription to the desired one, if they differ.
fn altered(
    input: &NodeDiffInput<'_>,
    sub: &DesiredSubscription,
    live: &SubscriptionCatalog,
) -> Option<Change> {
    let mut statements = Vec::new();
    let mut reasons = Vec::new();
    // Without the privilege to read subconninfo it comes back empty: nothing to
    // compare, rather than a difference that could never go away.
    let differences = if live.conninfo_redacted.is_empty() {
        Vec::new()
    } else {
        conninfo_differences(sub, &live.conninfo_redacted)
    };
    if !differences.is_empty() {
        statements.push(ddl::set_connection(sub));
        reasons.push(format!("connection: {}", differences.join(", ")));
    }
    if live.publications != [sub.publication.clone()] {
        statements.push(ddl::set_publication(sub));
        reasons.push(format!(
            "publications {} → {}",
            live.publications.join(", "),
            sub.publication
        ));
    }
    let origin = sub.origin.as_sql();
    if live.origin != origin {
        statements.push(ddl::set_origin(&sub.name, sub.origin));
        reasons.push(format!("origin {} → {origin}", live.origin));
    }
    if !live.enabled {
        statements.push(ddl::enable(&sub.name));
        reasons.push("disabled → enabled".into());
    }
    if statements.is_empty() {
        return None;
    }
    let mut c = input.change(address(&sub.name), Action::Update, statements);
    c.reason = Some(reasons.join(", "));
    Some(c)
}

/// Subscriptions pgconverge created whose publisher is no longer in the config.
fn dropped(input: &NodeDiffInput<'_>) -> Vec<Change> {
    let desired: BTreeSet<&str> = input
        .desired
        .subscriptions
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    input
        .observed
        .subscriptions
        .keys()
        .filter(|name| !desired.contains(name.as_str()) && input.manages(&address(name)))
        .map(|name| {
            let mut c = input.change(
                address(name),
                Action::Delete,
                ddl::detach_and_drop_subscription(name),
            );
            c.transactional = false;
            c.reason = Some("its publisher is no longer in the config".into());
            c
        })
        .collect()
}

/// What differs between the desired connection and the live one (read redacted): the
/// address, the role, every TLS keyword, and a stored password certificate auth no longer wants.
fn conninfo_differences(sub: &DesiredSubscription, live: &str) -> Vec<String> {
    let pairs = pgconverge_sql::conninfo_pairs(live);
    let port = sub.conninfo.port.to_string();
    let spec = &sub.conninfo;
    let wanted = [
        ("host", Some(spec.host.as_str())),
        ("port", Some(port.as_str())),
        ("dbname", Some(spec.dbname.as_str())),
        ("user", Some(spec.user.as_str())),
        ("sslmode", spec.sslmode.as_deref()),
        ("sslrootcert", spec.sslrootcert.as_deref()),
        ("sslcert", spec.sslcert.as_deref()),
        ("sslkey", spec.sslkey.as_deref()),
    ];
    let mut differences: Vec<String> = wanted
        .iter()
        .filter(|(key, value)| pairs.get(*key).map(String::as_str) != *value)
        .map(|(key, value)| {
            format!(
                "{key} {} → {}",
                pairs.get(*key).map_or("unset", String::as_str),
                value.unwrap_or("unset")
            )
        })
        .collect();
    // Whether a password is wanted at all is known only at execution (the peer may have none),
    // so only a password certificate auth must not keep is a difference here.
    if spec.password_of.is_none() && pairs.contains_key("password") {
        differences.push("password stored → none (certificate authentication)".to_string());
    }
    differences
}

pub(crate) mod ddl {
    use crate::desired::{DesiredSubscription, SubscriptionOrigin};
    use crate::statement::{Segment, Statement};
    use pgconverge_sql::{quote_ident, quote_literal};

    /// Subscriptions never create their slot: two nodes subscribing to each other at once would
    /// each wait, inside CREATE SUBSCRIPTION, for the other's transaction (slot creation waits for
    /// running transactions on the publisher). The slot is a step of its own on the publisher.
    pub fn create_subscription(sub: &DesiredSubscription) -> Statement {
        // streaming = on, not 18's default `parallel`: a parallel apply helper deadlocks with the
        // leader on the conflict triggers' locks under large transactions.
        let options = [
            format!("origin = {}", sub.origin.as_sql()),
            "copy_data = false".to_string(),
            "streaming = on".to_string(),
            "create_slot = false".to_string(),
            format!("slot_name = {}", quote_literal(&sub.name)),
        ];
        Statement {
            segments: vec![
                Segment::Sql(format!(
                    "CREATE SUBSCRIPTION {} CONNECTION ",
                    quote_ident(&sub.name)
                )),
                Segment::Conninfo(sub.conninfo.clone()),
                Segment::Sql(format!(
                    " PUBLICATION {} WITH ({})",
                    quote_ident(&sub.publication),
                    options.join(", ")
                )),
            ],
        }
    }

    /// Statements that remove a subscription without touching its slot (the publisher's side is
    /// handled on the publisher, which may be gone).
    pub fn detach_and_drop_subscription(name: &str) -> Vec<Statement> {
        let q = quote_ident(name);
        vec![
            Statement::sql(format!("ALTER SUBSCRIPTION {q} DISABLE")),
            Statement::sql(format!("ALTER SUBSCRIPTION {q} SET (slot_name = NONE)")),
            Statement::sql(format!("DROP SUBSCRIPTION {q}")),
        ]
    }

    /// Points the subscription at the desired connection (the password resolved at apply).
    pub fn set_connection(sub: &DesiredSubscription) -> Statement {
        Statement {
            segments: vec![
                Segment::Sql(format!(
                    "ALTER SUBSCRIPTION {} CONNECTION ",
                    quote_ident(&sub.name)
                )),
                Segment::Conninfo(sub.conninfo.clone()),
            ],
        }
    }

    pub fn set_publication(sub: &DesiredSubscription) -> Statement {
        Statement::sql(format!(
            "ALTER SUBSCRIPTION {} SET PUBLICATION {} WITH (refresh = false)",
            quote_ident(&sub.name),
            quote_ident(&sub.publication)
        ))
    }

    pub fn set_origin(name: &str, origin: SubscriptionOrigin) -> Statement {
        Statement::sql(format!(
            "ALTER SUBSCRIPTION {} SET (origin = {})",
            quote_ident(name),
            origin.as_sql()
        ))
    }

    pub fn enable(name: &str) -> Statement {
        Statement::sql(format!("ALTER SUBSCRIPTION {} ENABLE", quote_ident(name)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statement::ConninfoSpec;

    fn desired(password_of: Option<&str>) -> DesiredSubscription {
        DesiredSubscription {
            name: "n2_from_n1".into(),
            publisher: "n1".into(),
            publication: "pgconverge_n1".into(),
            origin: crate::desired::SubscriptionOrigin::None,
            conninfo: ConninfoSpec {
                host: "10.0.0.1".into(),
                port: 5432,
                dbname: "app".into(),
                user: "repl".into(),
                sslmode: Some("verify-full".into()),
                sslrootcert: Some("/etc/pg/ca.crt".into()),
                sslcert: Some("/etc/pg/client.crt".into()),
                sslkey: Some("/etc/pg/client.key".into()),
                password_of: password_of.map(str::to_string),
            },
        }
    }

    #[test]
    fn the_security_note_says_which_credential_a_subscription_keeps() {
        assert_eq!(
            security_note(&desired(None)).as_deref(),
            Some("TLS verify-full, client certificate, no password stored")
        );
        assert_eq!(
            security_note(&desired(Some("n1"))).as_deref(),
            Some("TLS verify-full, password stored in the subscription")
        );
        let mut plain = desired(Some("n1"));
        plain.conninfo.sslmode = Some("disable".into());
        assert_eq!(security_note(&plain), None);
    }

    #[test]
    fn tls_keywords_that_changed_are_drift() {
        let sub = desired(Some("n1"));
        let same = sub.conninfo.render(Some("********"));
        assert!(conninfo_differences(&sub, &same).is_empty(), "{same}");
        let older = same
            .replace("sslmode=verify-full", "sslmode=require")
            .replace("sslrootcert=/etc/pg/ca.crt ", "");
        assert_eq!(
            conninfo_differences(&sub, &older),
            [
                "sslmode require → verify-full",
                "sslrootcert unset → /etc/pg/ca.crt"
            ]
        );
    }

    #[test]
    fn a_stored_password_is_drift_under_certificate_authentication() {
        let sub = desired(None);
        let with_password = desired(Some("n1")).conninfo.render(Some("********"));
        assert_eq!(
            conninfo_differences(&sub, &with_password),
            ["password stored → none (certificate authentication)"]
        );
        assert!(conninfo_differences(&sub, &sub.conninfo.render(None)).is_empty());
    }
}
