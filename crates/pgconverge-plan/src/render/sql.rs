//! The SQL view: every statement per node in execution order, passwords redacted. Steps that
//! involve other nodes (a bootstrap, a drain) show what they wait for and run elsewhere as
//! comments, and what they run on their own node as SQL.

use std::fmt::Write;

use crate::change::Change;
use crate::dag::OrderedChange;
use crate::lifecycle::{BootstrapSpec, DrainSpec, LifecycleStep};
use crate::plan::Plan;
use crate::statement::Statement;

pub fn render(plan: &Plan) -> String {
    let mut out = String::new();
    if !plan.has_changes() {
        out.push_str("-- No changes.\n");
        return out;
    }
    let configured = plan
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), n.address.clone()));
    let leaving = plan
        .departures
        .iter()
        .map(|d| (d.node.as_str(), "leaving the mesh".to_string()));
    for (name, address) in configured.chain(leaving) {
        let steps: Vec<_> = plan
            .steps
            .iter()
            .filter(|s| s.change.node == name)
            .collect();
        if steps.is_empty() {
            continue;
        }
        let _ = writeln!(out, "-- ===== node {name} ({address}) =====");
        for s in steps {
            render_step(&mut out, s);
        }
        out.push('\n');
    }
    out
}

fn render_step(out: &mut String, s: &OrderedChange) {
    render_step_with(out, s, &Statement::redacted)
}

/// One step as SQL, each statement written by `statement` (redacted for people; a script
/// generated for psql fills connection strings in from psql variables).
pub(crate) fn render_step_with(
    out: &mut String,
    s: &OrderedChange,
    statement: &dyn Fn(&Statement) -> String,
) {
    let c = &s.change;
    let _ = writeln!(
        out,
        "\n-- step {}: {} {}",
        s.id + 1,
        c.action.symbol(),
        c.label()
    );
    if !s.depends_on.is_empty() {
        let deps: Vec<String> = s.depends_on.iter().map(|d| (d + 1).to_string()).collect();
        let _ = writeln!(out, "-- after steps {}", deps.join(", "));
    }
    match &c.lifecycle {
        Some(LifecycleStep::Bootstrap(spec)) => return render_bootstrap(out, c, spec),
        Some(LifecycleStep::Drain(spec)) => render_drain(out, c, spec),
        None => {}
    }
    if c.transactional {
        let _ = writeln!(out, "BEGIN;");
    } else {
        let _ = writeln!(
            out,
            "-- not in a transaction block (PostgreSQL refuses one here)"
        );
    }
    for st in &c.statements {
        let _ = writeln!(out, "{};", statement(st));
    }
    if c.transactional {
        let _ = writeln!(out, "COMMIT;");
    }
}

fn render_bootstrap(out: &mut String, c: &Change, spec: &BootstrapSpec) {
    for wait in &spec.catch_up {
        let _ = writeln!(
            out,
            "-- on {}: wait until slot {} confirms where slot {} starts ({} has applied {}'s \
             changes up to it)",
            wait.publisher, wait.donor_slot, wait.joiner_slot, spec.donor, wait.publisher
        );
    }
    let _ = writeln!(
        out,
        "-- on {}, under one REPEATABLE READ READ ONLY snapshot, each table's rows:",
        spec.donor
    );
    for t in &spec.tables {
        let _ = writeln!(out, "--   {};", t.copy_out_sql);
    }
    let _ = writeln!(
        out,
        "-- on {}, into empty tables, in one transaction:",
        c.node
    );
    let _ = writeln!(out, "BEGIN;");
    for sql in &spec.joiner_setup_sql {
        let _ = writeln!(out, "{sql};");
    }
    for t in &spec.tables {
        let _ = writeln!(out, "{};  -- rows from {}", t.copy_in_sql, spec.donor);
    }
    for sql in spec.joiner_after_copy_sql() {
        let _ = writeln!(out, "{sql};");
    }
    let _ = writeln!(out, "COMMIT;");
}

fn render_drain(out: &mut String, c: &Change, spec: &DrainSpec) {
    for wait in &spec.waits {
        let _ = writeln!(
            out,
            "-- on {}: wait until slot {} confirms pg_current_wal_insert_lsn() as read when the \
             drain starts ({} has applied all {} wrote)",
            c.node, wait.slot, wait.subscriber, c.node
        );
    }
}
