//! `simulate --output html`: one self-contained page (inline CSS, no
//! script, no external URL) showing, per ReplicaSet, its pods as cells in
//! zone columns, coloured and numbered by deletion order, and the zone
//! counts before and after each `--scale`. Written as well-formed XHTML so
//! that any XML parser can check it.

use crate::{PodReport, ReplicaSetReport, Report, ScaleReport};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

const STYLE: &str = "
body { font-family: sans-serif; margin: 1.5em; color: #222; background: #fff; }
h1 { font-size: 1.4em; margin-bottom: 0.2em; }
h2 { font-size: 1.15em; margin: 1.6em 0 0.4em; }
p.meta { margin: 0.2em 0; color: #555; }
table.zones { border-collapse: collapse; }
table.zones th { background: #eee; padding: 0.3em 0.8em; border: 1px solid #bbb; }
table.zones td { vertical-align: top; padding: 0.3em; border: 1px solid #bbb; min-width: 10em; }
div.pod { border-radius: 4px; margin: 0.25em 0; padding: 0.25em 0.4em; color: #111; border: 2px solid transparent; }
div.pod b { font-size: 1.3em; margin-right: 0.4em; }
div.pod span.name { font-family: monospace; font-size: 0.85em; }
div.pod span.detail { display: block; font-size: 0.8em; color: #333; }
div.removed { border: 2px dashed #000; opacity: 0.75; }
table.counts { border-collapse: collapse; margin: 0.4em 0 0.8em; }
table.counts th, table.counts td { border: 1px solid #bbb; padding: 0.2em 0.8em; text-align: right; }
table.counts th:first-child, table.counts td:first-child { text-align: left; }
p.legend { font-size: 0.85em; color: #444; }
ul.warnings li { color: #8a4b00; }
";

/// Escapes text for XHTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Not allowed in XML 1.0 at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// The whole report as one page.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n<title>pod-deletion-cost: what if</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
    );
    let s = &r.snapshot;
    let _ = writeln!(out, "<h1>What the policy would do</h1>");
    let _ = writeln!(
        out,
        "<p class=\"meta\">Snapshot {} ({} nodes, {} pods); settings: {}; zones by node label <code>{}</code>; deletion order as of {}.</p>",
        escape(&s.files.join(", ")),
        s.nodes,
        s.pods,
        escape(&r.policy.source),
        escape(&r.policy.topology_key),
        escape(&s.now)
    );
    let _ = writeln!(
        out,
        "<p class=\"legend\">Each cell is a pod, numbered in the order the ReplicaSet controller deletes them on scale-down: red goes first, green last. A dashed border marks a pod a <code>--scale</code> removes.</p>"
    );
    for rs in &r.replica_sets {
        let scales: Vec<&ScaleReport> = r
            .scale
            .iter()
            .filter(|sc| {
                sc.replica_set == rs.name
                    && sc.target.split('/').next() == Some(rs.namespace.as_str())
            })
            .collect();
        replica_set(&mut out, rs, &scales);
    }
    if !r.warnings.is_empty() {
        let _ = writeln!(out, "<h2>Warnings</h2>\n<ul class=\"warnings\">");
        for w in &r.warnings {
            let _ = writeln!(out, "<li>{}</li>", escape(w));
        }
        let _ = writeln!(out, "</ul>");
    }
    out.push_str("</body>\n</html>\n");
    out
}

fn zone_of(p: &PodReport) -> String {
    p.zone.clone().unwrap_or_else(|| "no zone".into())
}

fn replica_set(out: &mut String, rs: &ReplicaSetReport, scales: &[&ScaleReport]) {
    let owner = match &rs.deployment {
        Some(d) => format!(" (Deployment {})", escape(d)),
        None => String::new(),
    };
    let _ = writeln!(
        out,
        "<h2>ReplicaSet {}/{}{owner}: {} pods</h2>",
        escape(&rs.namespace),
        escape(&rs.name),
        rs.pods.len()
    );
    let mut by_zone: BTreeMap<String, Vec<&PodReport>> = BTreeMap::new();
    for p in &rs.pods {
        by_zone.entry(zone_of(p)).or_default().push(p);
    }
    let removed: BTreeSet<&str> = scales
        .iter()
        .flat_map(|sc| sc.removed.iter().map(String::as_str))
        .collect();
    out.push_str("<table class=\"zones\">\n<tr>");
    for (zone, pods) in &by_zone {
        let _ = write!(out, "<th>{} ({})</th>", escape(zone), pods.len());
    }
    out.push_str("</tr>\n<tr>");
    for pods in by_zone.values() {
        out.push_str("<td>");
        for p in pods {
            pod_cell(out, p, rs.pods.len(), removed.contains(p.name.as_str()));
        }
        out.push_str("</td>");
    }
    out.push_str("</tr>\n</table>\n");
    for sc in scales {
        scale_counts(out, sc);
    }
}

fn pod_cell(out: &mut String, p: &PodReport, total: usize, removed: bool) {
    // Hue 0 (red) for the first deleted to 120 (green) for the last.
    let hue = if total > 1 {
        (p.delete_order - 1) * 120 / (total - 1)
    } else {
        120
    };
    let class = if removed { "pod removed" } else { "pod" };
    let dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    let mut detail = format!("cost {}, rank {}", dash(&p.cost), dash(&p.rank));
    if !(p.phase == "Running" && p.ready) {
        detail.push_str(&format!(
            ", {}{}",
            p.phase,
            if p.ready { "" } else { ", not ready" }
        ));
    }
    let _ = writeln!(
        out,
        "<div class=\"{class}\" style=\"background: hsl({hue}, 70%, 78%)\" title=\"{}\"><b>{}</b><span class=\"name\">{}</span><span class=\"detail\">{}</span></div>",
        escape(&format!(
            "node {}; {}",
            p.node.as_deref().unwrap_or("-"),
            p.decision
        )),
        p.delete_order,
        escape(&p.name),
        escape(&detail)
    );
}

fn scale_counts(out: &mut String, sc: &ScaleReport) {
    let _ = writeln!(
        out,
        "<p class=\"meta\">Scale {} {} → {}: {} removed</p>",
        escape(&sc.target),
        sc.from,
        sc.to,
        sc.removed.len()
    );
    out.push_str("<table class=\"counts\">\n<tr><th>zone</th><th>before</th><th>after</th></tr>\n");
    let zones: BTreeSet<&String> = sc
        .zones_before
        .keys()
        .chain(sc.zones_after.keys())
        .collect();
    for z in zones {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(z),
            sc.zones_before.get(z).copied().unwrap_or(0),
            sc.zones_after.get(z).copied().unwrap_or(0)
        );
    }
    out.push_str("</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rstest::rstest]
    #[case::plain("web-1", "web-1")]
    #[case::markup("<b>&\"'", "&lt;b&gt;&amp;&quot;&#39;")]
    #[case::control("a\u{1}b", "a\u{fffd}b")]
    fn escapes_cluster_strings(#[case] text: &str, #[case] want: &str) {
        assert_eq!(escape(text), want);
    }
}
