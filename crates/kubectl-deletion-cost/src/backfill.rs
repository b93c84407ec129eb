//! `backfill`: what the policy would have written on the pods it never
//! saw (bound before it was installed, or while policy-server was down
//! with `failurePolicy: Ignore`), as `kubectl annotate` commands.
//!
//! Ranks fit the ranks already held: a pod given a rank takes the lowest
//! slot free in its zone, after the pods that keep theirs, as the policy
//! would have given it, so that the result audits clean.

use crate::audit::zone_groups;
use crate::expected::{PodView, Verdict};
use cluster_sim::{COST_ANNOTATION, RANK_ANNOTATION, ZONE_ANNOTATION};
use pod_deletion_cost_policy::decision::FreeSlots;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// The annotations to write on one pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Patch {
    pub namespace: String,
    pub pod: String,
    /// The pod's version in the snapshot: kubectl refuses the change when
    /// the pod has changed since.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    pub annotations: BTreeMap<String, String>,
}

/// The patches for `views` (see `expected::evaluate`). Pods that carry a
/// cost are left alone unless `include_existing`; with it, their cost is
/// corrected and duplicated or out-of-range ranks are moved to free slots.
pub fn plan(views: &[PodView], include_existing: bool) -> Vec<Patch> {
    let eligible = |v: &PodView| {
        matches!(v.verdict, Verdict::Annotate { .. }) && (v.cost.is_none() || include_existing)
    };
    let mut ranks: BTreeMap<(&str, &str), u32> = BTreeMap::new();
    for members in zone_groups(views).values() {
        for (v, rank) in assign_ranks(members, &eligible) {
            ranks.insert((&v.namespace, &v.name), rank);
        }
    }
    let mut out = Vec::new();
    for v in views.iter().filter(|v| eligible(v)) {
        let placed = if v.ranked() {
            let Some(rank) = ranks.get(&(&v.namespace, &v.name)).copied().or(v.rank) else {
                continue;
            };
            let Some(zone) = &v.zone else { continue };
            Some((zone.as_str(), rank))
        } else {
            None
        };
        out.extend(Patch::to_reach(v, placed));
    }
    out
}

impl Patch {
    /// The annotations that give `v` the rank `placed` says in its zone
    /// (when it is ranked) and the cost the policy writes with it; `None`
    /// when the pod carries them already. A pod whose cost the policy
    /// keeps (`keepExistingCost`) gets the rank only, which its siblings'
    /// bindings count.
    pub(crate) fn to_reach(v: &PodView, placed: Option<(&str, u32)>) -> Option<Patch> {
        let mut annotations = BTreeMap::new();
        if let Some((zone, rank)) = placed {
            if v.zone_annotation.as_deref() != Some(zone) {
                annotations.insert(ZONE_ANNOTATION.to_string(), zone.to_string());
            }
            if v.rank_text.as_deref() != Some(rank.to_string().as_str()) {
                annotations.insert(RANK_ANNOTATION.to_string(), rank.to_string());
            }
        }
        if let Some(cost) = v
            .cost_with_rank(placed.map(|(_, rank)| rank))
            .filter(|c| v.cost.as_ref() != Some(c))
        {
            annotations.insert(COST_ANNOTATION.to_string(), cost);
        }
        (!annotations.is_empty()).then(|| Patch {
            namespace: v.namespace.clone(),
            pod: v.name.clone(),
            resource_version: v.resource_version.clone(),
            annotations,
        })
    }
}

/// New ranks in one zone (members oldest first). A pod keeps its rank
/// unless it may be changed and the rank is missing, already held by an
/// older pod, or beyond the zone's size. Pods that keep no valid rank and
/// may not be changed take the lowest free slots first, as the policy
/// counts them; the pods being ranked then take the lowest slots left.
fn assign_ranks<'a>(
    members: &[&'a PodView],
    may_change: &dyn Fn(&PodView) -> bool,
) -> Vec<(&'a PodView, u32)> {
    let size = u32::try_from(members.len()).unwrap_or(u32::MAX);
    let mut first_holder: BTreeSet<u32> = BTreeSet::new();
    let mut movers = Vec::new();
    let mut slots = FreeSlots::new(BTreeSet::new());
    let mut unranked_kept = 0usize;
    for v in members {
        let first = v.rank.is_some_and(|r| first_holder.insert(r));
        let moves = may_change(v)
            && v.ranked()
            && (v.rank.is_none() || !first || v.rank.is_some_and(|r| r >= size));
        match (moves, v.rank) {
            (true, _) => movers.push(*v),
            (false, Some(r)) => slots.hold(r),
            (false, None) => unranked_kept += 1,
        }
    }
    for _ in 0..unranked_kept {
        slots.take_lowest();
    }
    movers
        .into_iter()
        .map(|v| (v, slots.take_lowest()))
        .collect()
}

/// One `kubectl annotate` command per patch, each word quoted for a POSIX
/// shell.
pub fn render_commands(patches: &[Patch]) -> String {
    let mut out = String::new();
    for p in patches {
        let mut words = vec![
            "kubectl".to_string(),
            "annotate".into(),
            "--overwrite".into(),
        ];
        match &p.resource_version {
            Some(rv) => words.push(format!("--resource-version={rv}")),
            None => out.push_str(&format!(
                "# {}/{}: the snapshot has no resourceVersion: written without the check\n",
                p.namespace, p.pod
            )),
        }
        words.extend(["-n".into(), p.namespace.clone(), format!("pod/{}", p.pod)]);
        words.extend(p.annotations.iter().map(|(k, v)| format!("{k}={v}")));
        let quoted: Vec<String> = words.iter().map(|w| quote(w)).collect();
        out.push_str(&quoted.join(" "));
        out.push('\n');
    }
    out
}

/// Quotes a word for a POSIX shell; plain words stay as they are.
fn quote(word: &str) -> String {
    // shlex also quotes `=` (an assignment in first position), which no
    // word here is: keep `key=value` readable.
    let plain = !word.is_empty()
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b));
    if plain {
        return word.to_string();
    }
    // Only a NUL byte cannot be quoted; Kubernetes names and annotation
    // values never hold one.
    shlex::try_quote(word)
        .map(|q| q.into_owned())
        .unwrap_or_else(|_| word.replace('\0', ""))
}
