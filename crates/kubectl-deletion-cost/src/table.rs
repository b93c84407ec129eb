//! The report as tables for a terminal.

use crate::report::{ReplicaSetReport, Report, ScaleReport};
use std::collections::BTreeSet;
use std::fmt::Write;

/// The report as tables for a terminal.
pub fn render_table(r: &Report) -> String {
    let mut out = String::new();
    let s = &r.snapshot;
    let _ = writeln!(
        out,
        "Snapshot: {} ({} nodes, {} pods): {} bindings evaluated, {} not sent to the policy, {} mirror pods, {} pods not bound",
        s.files.join(", "),
        s.nodes,
        s.pods,
        s.evaluated,
        s.not_sent,
        s.mirror_pods,
        s.unbound
    );
    let _ = writeln!(out, "Settings: {}", r.policy.source);
    let _ = writeln!(
        out,
        "Zones by node label {}; deletion order as of {}",
        r.policy.topology_key, s.now
    );
    for rs in &r.replica_sets {
        replica_set_table(&mut out, rs);
    }
    for sc in &r.scale {
        scale_table(&mut out, sc);
    }
    if !r.notes.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "Notes:");
        for n in &r.notes {
            let _ = writeln!(out, "  {n}");
        }
    }
    let _ = writeln!(out);
    if r.warnings.is_empty() {
        let _ = writeln!(out, "Warnings: none");
    } else {
        let _ = writeln!(out, "Warnings ({}):", r.warnings.len());
        for w in &r.warnings {
            let _ = writeln!(out, "  {w}");
        }
    }
    out
}

/// A ReplicaSet's pods in the order the controller would delete them.
fn replica_set_table(out: &mut String, rs: &ReplicaSetReport) {
    let _ = writeln!(out);
    let owner = match &rs.deployment {
        Some(d) => format!(" (Deployment {d})"),
        None => String::new(),
    };
    let _ = writeln!(
        out,
        "ReplicaSet {}/{}{owner}: {} pods, deleted in this order on scale-down",
        rs.namespace,
        rs.name,
        rs.pods.len()
    );
    let rows: Vec<[String; 7]> = rs
        .pods
        .iter()
        .map(|p| {
            let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
            [
                p.delete_order.to_string(),
                p.name.clone(),
                dash(&p.node),
                dash(&p.zone),
                dash(&p.cost),
                dash(&p.rank),
                if p.phase == "Running" && p.ready {
                    p.decision.clone()
                } else {
                    format!(
                        "{} ({}{})",
                        p.decision,
                        p.phase,
                        if p.ready { "" } else { ", not ready" }
                    )
                },
            ]
        })
        .collect();
    out.push_str(&table(
        ["ORDER", "POD", "NODE", "ZONE", "COST", "RANK", "DECISION"],
        &rows,
    ));
}

/// What one `--scale` removes, and the pods per zone before and after.
fn scale_table(out: &mut String, sc: &ScaleReport) {
    let _ = writeln!(out);
    if sc.removed.is_empty() {
        let _ = writeln!(
            out,
            "Scale {} ({}) {} -> {}: no pod removed{}",
            sc.target,
            sc.replica_set,
            sc.from,
            sc.to,
            if sc.to > sc.from {
                " (new pods get their cost when the scheduler binds them)"
            } else {
                ""
            }
        );
    } else {
        let _ = writeln!(
            out,
            "Scale {} ({}) {} -> {}: removes {}",
            sc.target,
            sc.replica_set,
            sc.from,
            sc.to,
            sc.removed.join(", ")
        );
    }
    let zones: BTreeSet<&String> = sc
        .zones_before
        .keys()
        .chain(sc.zones_after.keys())
        .collect();
    let rows: Vec<[String; 3]> = zones
        .into_iter()
        .map(|z| {
            [
                z.clone(),
                sc.zones_before.get(z).copied().unwrap_or(0).to_string(),
                sc.zones_after.get(z).copied().unwrap_or(0).to_string(),
            ]
        })
        .collect();
    out.push_str(&table(["ZONE", "BEFORE", "AFTER"], &rows));
}

pub(crate) fn table<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut l = String::from(" ");
        for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
            l.push(' ');
            l.push_str(c);
            if i + 1 < N {
                l.push_str(&" ".repeat(w - c.chars().count() + 1));
            }
        }
        l.trim_end().to_string() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}
