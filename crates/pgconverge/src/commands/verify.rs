//! `pgconverge verify`: whether every node holds the same rows, which keys differ and where,
//! which rows break a foreign key; with `--repair`, what was re-sent. Exit 0 identical, 2
//! different (or orphans, or keys a repair left differing), 1 on error.

use std::fmt::Write as _;
use std::time::Duration;

use pgconverge_engine::operations::verify::{
    KeyDifference, KeyState, NodeKey, RepairOutcome, TableVerdict, VerifyOptions, VerifyReport,
};
use pgconverge_engine::Cluster;

use crate::cli::{GlobalArgs, VerifyArgs};
use crate::config_source::locate_and_load;
use crate::error::{context, CommandError};

pub async fn run(global: &GlobalArgs, args: &VerifyArgs) -> Result<u8, CommandError> {
    let (_, config) = locate_and_load(global)?;
    let cluster = Cluster::new(config, &global.state)?;
    let options = VerifyOptions {
        tables: args.tables.clone(),
        repair: args.repair,
        max_keys: args.max_keys,
        catch_up_timeout: Duration::from_secs(args.catch_up_timeout),
    };
    let report = cluster.verify(&options).await?;
    if args.json {
        let text = serde_json::to_string_pretty(&report).map_err(context("encoding the report"))?;
        println!("{text}");
    } else {
        print!("{}", render(&report));
    }
    Ok(if settled(&report) { 0 } else { 2 })
}

/// Identical and without orphans; after a repair, when it left nothing differing.
fn settled(report: &VerifyReport) -> bool {
    if report.summary.orphan_rows > 0 {
        return false;
    }
    match &report.repair {
        None => report.summary.differing_keys == 0,
        Some(r) => {
            r.still_differing == 0
                && r.unrepaired.is_empty()
                && r.repaired_keys == report.summary.differing_keys
        }
    }
}

fn render(report: &VerifyReport) -> String {
    let mut out = String::new();
    for table in &report.tables {
        render_table(&mut out, table);
    }
    if !report.orphans.is_empty() {
        out.push_str("rows breaking a foreign key:\n");
        for o in &report.orphans {
            let _ = writeln!(
                out,
                "  {}: {}({}) -> {}({}): {} row(s)",
                o.node,
                o.table,
                o.columns.join(", "),
                o.parent_table,
                o.parent_columns.join(", "),
                o.count
            );
            for row in &o.rows {
                let _ = writeln!(out, "    {} names missing {}", row.key, row.missing_parent);
            }
        }
    }
    for note in &report.notes {
        let _ = writeln!(out, "note: {note}");
    }
    if let Some(repair) = &report.repair {
        render_repair(&mut out, repair);
    }
    let s = &report.summary;
    let _ = writeln!(
        out,
        "{} of {} table(s) differ ({} key(s)); {} row(s) break a foreign key",
        s.differing_tables, s.tables, s.differing_keys, s.orphan_rows
    );
    out
}

fn render_table(out: &mut String, table: &TableVerdict) {
    let rows: Vec<String> = table
        .rows
        .iter()
        .map(|r| format!("{} {}", r.node, r.rows))
        .collect();
    if table.identical {
        let _ = writeln!(
            out,
            "{}: identical (rows: {})",
            table.table,
            rows.join(", ")
        );
    } else {
        let _ = writeln!(
            out,
            "{}: {} key(s) differ (rows: {}; {} of {} buckets differed)",
            table.table,
            table.differing_keys,
            rows.join(", "),
            table.differing_buckets,
            table.buckets
        );
        for key in &table.keys {
            let _ = writeln!(out, "  {}", key_line(key));
        }
        if table.differing_keys > table.keys.len() {
            let _ = writeln!(
                out,
                "  … and {} more (--max-keys, or --json)",
                table.differing_keys - table.keys.len()
            );
        }
    }
    if table.unsettled_keys > 0 {
        let _ = writeln!(
            out,
            "  {} key(s) kept being written and were not compared at rest",
            table.unsettled_keys
        );
    }
}

fn key_line(key: &KeyDifference) -> String {
    let decided = key.winner.is_some();
    let nodes: Vec<String> = key.nodes.iter().map(|n| node_state(n, decided)).collect();
    let verdict = match (&key.winner, &key.undecidable) {
        (Some(node), _) if key.winner_deleted => format!("winner: the delete on {node}"),
        (Some(node), _) => format!("winner: the row on {node}"),
        (None, Some(why)) => format!("rules cannot choose: {why}"),
        (None, None) => "rules cannot choose".to_string(),
    };
    format!("{}: {}; {verdict}", key.key, nodes.join(", "))
}

/// A node's hold on a key: `present 1764…@n1`; `(differs)` when it lacks a decided winner.
fn node_state(n: &NodeKey, decided: bool) -> String {
    let stamp = n.stamp.as_ref().map_or(String::new(), |s| {
        // Rows written outside the triggers carry no origin.
        let origin = if s.origin.is_empty() { "''" } else { &s.origin };
        format!(" {}@{origin}", s.version)
    });
    let state = match n.state {
        KeyState::Present => "present",
        KeyState::Absent if n.stamp.is_some() => "deleted",
        KeyState::Absent => "absent",
    };
    let mark = if decided && !n.holds_winner {
        " (differs)"
    } else {
        ""
    };
    format!("{} {state}{stamp}{mark}", n.node)
}

fn render_repair(out: &mut String, repair: &RepairOutcome) {
    let _ = writeln!(
        out,
        "repair: {} key(s) repaired ({} change(s) sent), {} still differ, {} left alone",
        repair.repaired_keys,
        repair.changes_sent,
        repair.still_differing,
        repair.unrepaired.len()
    );
    for u in &repair.unrepaired {
        let on = u
            .node
            .as_deref()
            .map_or(String::new(), |n| format!(" on {n}"));
        let _ = writeln!(out, "  {} {}{on}: {}", u.table, u.key, u.reason);
    }
}
