//! The human plan view.

use std::fmt::Write;

use crate::change::Action;
use crate::dag::OrderedChange;
use crate::lifecycle::{CarriedObject, LifecycleStep};
use crate::plan::Plan;

struct Palette {
    color: bool,
}

impl Palette {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
    fn action(&self, action: Action) -> String {
        let code = match action {
            Action::Create => "32",
            Action::Update => "33",
            Action::Replace => "35",
            Action::Delete => "31",
        };
        self.paint(code, action.symbol())
    }
    fn bold(&self, text: &str) -> String {
        self.paint("1", text)
    }
}

/// How the human view is drawn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HumanView {
    /// ANSI colours.
    pub color: bool,
    /// Body diffs of regenerated functions too, not only of drifted ones (`plan --diff`).
    pub all_body_diffs: bool,
}

/// Renders the plan; `color` adds ANSI colours. Body diffs are shown for drift only.
pub fn render(plan: &Plan, color: bool) -> String {
    render_with(
        plan,
        HumanView {
            color,
            all_body_diffs: false,
        },
    )
}

/// Renders the plan as `view` says.
pub fn render_with(plan: &Plan, view: HumanView) -> String {
    let p = Palette { color: view.color };
    let mut out = String::new();
    if !plan.blockers.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            p.paint(
                "1;31",
                "Error: prerequisites not met; nothing can be applied until they are:"
            )
        );
        for b in &plan.blockers {
            let _ = writeln!(
                out,
                "  - node {}: {}: {} (needs {})",
                b.node, b.setting, b.current, b.required
            );
            let _ = writeln!(out, "      fix: {}", b.fix);
        }
        let _ = writeln!(out);
    }
    if !plan.warnings.is_empty() {
        let _ = writeln!(out, "{}", p.paint("1;33", "Warning:"));
        for w in &plan.warnings {
            let _ = writeln!(out, "  - {w}");
        }
        let _ = writeln!(out);
    }
    let drifted: Vec<&OrderedChange> = plan.steps.iter().filter(|s| s.change.drift).collect();
    if !drifted.is_empty() {
        let _ = writeln!(
            out,
            "{}",
            p.bold("Objects have changed outside of pgconverge:")
        );
        for s in &drifted {
            let _ = writeln!(
                out,
                "  ! {} on {}{}",
                s.change.address,
                s.change.node,
                match &s.change.reason {
                    Some(r) => format!(" ({r})"),
                    None => " (missing)".to_string(),
                }
            );
        }
        let _ = writeln!(out);
    }
    if !plan.has_changes() {
        if plan.blockers.is_empty() {
            let _ = writeln!(
                out,
                "{}",
                p.paint("32", "No changes. The cluster matches the configuration.")
            );
        }
        return out;
    }
    let _ = writeln!(out, "pgconverge will perform the following actions:");
    if plan.steps.iter().any(|s| s.change.gated) {
        let _ = writeln!(
            out,
            "Steps marked [gated] go live on every node together while writes to their tables \
             wait (docs/evolution.md)."
        );
    }
    let configured = plan.nodes.iter().map(|node| {
        (
            node.name.as_str(),
            format!("Node {} ({})", node.name, node.address),
        )
    });
    let departing = plan.departures.iter().map(|d| {
        let heading = match &d.unreachable {
            None => format!("Node {} (leaving the mesh)", d.node),
            Some(error) => format!(
                "Node {} (leaving the mesh) — {} is unreachable: {error}\n  Its own \
                 subscriptions and publication are left as they are; the other nodes stop \
                 replicating with it and pgconverge forgets it.",
                d.node, d.node
            ),
        };
        (d.node.as_str(), heading)
    });
    for (name, heading) in configured.chain(departing) {
        let steps: Vec<&OrderedChange> = plan
            .steps
            .iter()
            .filter(|s| s.change.node == name)
            .collect();
        let leaving_unreachable = plan
            .departures
            .iter()
            .any(|d| d.node == name && d.unreachable.is_some());
        if steps.is_empty() && !leaving_unreachable {
            continue;
        }
        let _ = writeln!(out, "\n{}", p.bold(&heading));
        for s in steps {
            let c = &s.change;
            let mut line = format!("  {} {}", p.action(c.action), c.label());
            if c.gated {
                line.push_str(" [gated]");
            }
            match (&c.reason, c.action) {
                (Some(reason), Action::Replace) => {
                    line.push_str(&format!("  # forces replacement: {reason}"))
                }
                (Some(reason), _) => line.push_str(&format!("  # {reason}")),
                (None, _) => {}
            }
            let _ = writeln!(out, "{line}");
            if let Some(LifecycleStep::Bootstrap(spec)) = &c.lifecycle {
                write_carried(&mut out, &spec.outside_objects);
            }
            let show_diff = c.drift || view.all_body_diffs;
            if let Some(diff) = c.body_diff.as_ref().filter(|_| show_diff) {
                for l in diff.lines() {
                    let painted = if l.starts_with('+') && !l.starts_with("+++") {
                        p.paint("32", l)
                    } else if l.starts_with('-') && !l.starts_with("---") {
                        p.paint("31", l)
                    } else {
                        l.to_string()
                    };
                    let _ = writeln!(out, "      {painted}");
                }
            }
            for h in &c.hazards {
                let _ = writeln!(out, "      {} {}", p.paint("33", "hazard:"), h.message);
            }
        }
    }
    let s = plan.summary();
    let _ = writeln!(
        out,
        "\n{} {} to add, {} to change, {} to destroy.",
        p.bold("Plan:"),
        s.add,
        s.change,
        s.destroy
    );
    out
}

/// The objects outside the model a bootstrap creates, one line per kind: `copies views:
/// public.v, public.w`.
fn write_carried(out: &mut String, objects: &[CarriedObject]) {
    let mut kinds: Vec<&str> = Vec::new();
    for o in objects {
        if !kinds.contains(&o.kind.as_str()) {
            kinds.push(&o.kind);
        }
    }
    for kind in kinds {
        let names: Vec<&str> = objects
            .iter()
            .filter(|o| o.kind == kind)
            .map(|o| o.name.as_str())
            .collect();
        let _ = writeln!(out, "      copies {kind}: {}", names.join("; "));
    }
}
