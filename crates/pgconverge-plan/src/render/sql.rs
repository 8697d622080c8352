//! The SQL view: every statement per node in execution order, passwords redacted.

use std::fmt::Write;

use crate::plan::Plan;

pub fn render(plan: &Plan) -> String {
    let mut out = String::new();
    if !plan.has_changes() {
        out.push_str("-- No changes.\n");
        return out;
    }
    for node in &plan.nodes {
        let steps: Vec<_> = plan
            .steps
            .iter()
            .filter(|s| s.change.node == node.name)
            .collect();
        if steps.is_empty() {
            continue;
        }
        let _ = writeln!(out, "-- ===== node {} ({}) =====", node.name, node.address);
        for s in steps {
            let c = &s.change;
            let _ = writeln!(
                out,
                "\n-- step {}: {} {}",
                s.id + 1,
                c.action.symbol(),
                c.address
            );
            if !s.depends_on.is_empty() {
                let deps: Vec<String> = s.depends_on.iter().map(|d| (d + 1).to_string()).collect();
                let _ = writeln!(out, "-- after steps {}", deps.join(", "));
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
                let _ = writeln!(out, "{};", st.redacted());
            }
            if c.transactional {
                let _ = writeln!(out, "COMMIT;");
            }
        }
        out.push('\n');
    }
    out
}
