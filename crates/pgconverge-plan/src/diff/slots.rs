//! Replication slots on this node, the publisher: the ones peers' subscriptions need are
//! created here (a subscription never creates its own), and the ones pgconverge created for
//! subscriptions that are gone are dropped before they retain WAL until the disk fills.

use crate::address::ObjectAddress;
use crate::change::{Action, Change};
use crate::diff::NodeDiffInput;
use crate::hazard::{Hazard, HazardKind};
use crate::statement::Statement;

/// Slots peers' subscriptions need on this node that do not exist yet.
pub(super) fn diff_missing(input: &NodeDiffInput<'_>) -> Vec<Change> {
    input
        .desired_slots_here
        .iter()
        .filter(|name| !input.observed.slots.contains_key(*name))
        .map(|name| missing_slot(input, name))
        .collect()
}

fn missing_slot(input: &NodeDiffInput<'_>, name: &str) -> Change {
    let mut c = input.change(
        ObjectAddress::Slot {
            name: name.to_string(),
        },
        Action::Create,
        vec![Statement::sql(ddl::create_slot_sql(name))],
    );
    // Creating a logical slot is refused in a transaction that has written anything.
    c.transactional = false;
    let subscriber_has_it = input
        .cluster
        .values()
        .any(|catalog| catalog.subscriptions.contains_key(name));
    if subscriber_has_it {
        c.drift = true;
        c.reason = Some("its subscription exists but the slot is gone; the subscription resumes from the new slot".into());
        c.hazards.push(Hazard::new(
            HazardKind::ReplicationGap,
            format!(
                "changes made on {} while the slot was missing are not replayed to the \
                 subscriber",
                input.desired.name
            ),
        ));
    }
    c
}

/// Slots on this node that pgconverge created for subscriptions that no longer exist: they
/// would hold WAL until the disk fills.
pub(super) fn diff_orphans(input: &NodeDiffInput<'_>) -> Vec<Change> {
    let mut out = Vec::new();
    for (name, slot) in &input.observed.slots {
        let address = ObjectAddress::Slot { name: name.clone() };
        if input.desired_slots_here.contains(name) || !input.manages(&address) {
            continue;
        }
        let mut c = input.change(
            address,
            Action::Delete,
            vec![Statement::sql(ddl::drop_slot_sql(name))],
        );
        c.transactional = false;
        c.reason = Some("no subscription uses it any more; it would retain WAL".into());
        if slot.active {
            c.hazards.push(Hazard::new(
                HazardKind::SlotActive,
                "the slot is active: the walsender serving it is terminated, so its subscriber \
                 loses the connection",
            ));
        }
        out.push(c);
    }
    out
}

pub(crate) mod ddl {
    use pgconverge_sql::quote_literal;

    /// Attempts at dropping a slot whose walsender is being terminated, 100 ms apart.
    const DROP_ATTEMPTS: u32 = 100;

    pub fn create_slot_sql(name: &str) -> String {
        format!(
            "SELECT pg_create_logical_replication_slot({}, {})",
            quote_literal(name),
            quote_literal("pgoutput")
        )
    }

    /// Drops the slot if it exists. A slot still in use by a subscriber (a node leaving, a
    /// subscription being dropped elsewhere) cannot be dropped: its walsender is terminated
    /// and the drop retried until the subscriber has let go.
    pub fn drop_slot_sql(name: &str) -> String {
        let slot = quote_literal(name);
        format!(
            "DO $pgc$\n\
             DECLARE\n  attempt int := 0;\n\
             BEGIN\n  \
               LOOP\n    \
                 PERFORM pg_catalog.pg_terminate_backend(active_pid) \
                 FROM pg_catalog.pg_replication_slots \
                 WHERE slot_name = {slot} AND active_pid IS NOT NULL;\n    \
                 IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots \
                 WHERE slot_name = {slot}) THEN\n      RETURN;\n    END IF;\n    \
                 BEGIN\n      \
                   PERFORM pg_catalog.pg_drop_replication_slot({slot});\n      RETURN;\n    \
                 EXCEPTION WHEN object_in_use THEN\n      \
                   attempt := attempt + 1;\n      \
                   IF attempt >= {DROP_ATTEMPTS} THEN\n        RAISE;\n      END IF;\n      \
                   PERFORM pg_catalog.pg_sleep(0.1);\n    \
                 END;\n  \
               END LOOP;\n\
             END\n$pgc$"
        )
    }
}
