//! `rebalance`: each zone of a balanced ReplicaSet given the ranks
//! 0..n-1 again, in the order its pods hold them now, with the matching
//! costs.
//!
//! Bindings admitted together (a burst) can be given the same rank, and
//! deletions leave ranks free below ranks held: either way a zone looks
//! fuller or emptier to the ReplicaSet controller than it is, and the next
//! scale-down trims the wrong zone. Only the policy's own annotations are
//! rewritten, and only on ReplicaSets where some zone's ranks are not
//! exactly 0..n-1.

use crate::audit::{ZoneKey, zone_groups};
use crate::backfill::Patch;
use crate::expected::PodView;
use pod_deletion_cost_policy::decision::FreeSlots;
use std::collections::BTreeSet;

/// The patches that rank every zone of each ReplicaSet needing it 0..n-1.
pub fn plan(views: &[PodView]) -> Vec<Patch> {
    let groups = zone_groups(views);
    let uneven: BTreeSet<&str> = groups
        .iter()
        .filter(|(_, members)| !ranked_from_zero(members))
        .map(|((_, _, uid, _), _)| uid.as_str())
        .collect();
    let mut out = Vec::new();
    for (key, members) in &groups {
        if !uneven.contains(key.2.as_str()) {
            continue;
        }
        out.extend(zone_patches(key, members));
    }
    out
}

/// Whether the zone's pods hold exactly the ranks 0..n-1, one each.
fn ranked_from_zero(members: &[&PodView]) -> bool {
    let mut held: Vec<Option<u32>> = members.iter().map(|v| v.rank).collect();
    held.sort();
    held.iter()
        .enumerate()
        .all(|(i, r)| u32::try_from(i).is_ok_and(|i| *r == Some(i)))
}

/// The zone's pods in the order they keep: by the rank each holds as the
/// policy counts it, lower first. A valid rank annotation is held as
/// written; a pod without one holds the lowest slot left free, oldest
/// binding first, as the policy counts such a sibling when it ranks the
/// next binding. Pods holding the same rank go by binding time, older
/// first, as the policy ranks a zone's bindings one after the other.
pub fn order<'a>(members: &[&'a PodView]) -> Vec<&'a PodView> {
    let mut by_binding = members.to_vec();
    by_binding.sort_by(|a, b| (a.scheduled, &a.name).cmp(&(b.scheduled, &b.name)));
    let mut slots = FreeSlots::new(members.iter().filter_map(|v| v.rank).collect());
    let mut held: Vec<(u32, &PodView)> = by_binding
        .into_iter()
        .map(|v| (v.rank.unwrap_or_else(|| slots.take_lowest()), v))
        .collect();
    // Stable: equal ranks stay in binding order.
    held.sort_by_key(|(rank, _)| *rank);
    held.into_iter().map(|(_, v)| v).collect()
}

fn zone_patches(key: &ZoneKey, members: &[&PodView]) -> Vec<Patch> {
    let zone = key.3.as_str();
    order(members)
        .into_iter()
        .zip(0u32..)
        .filter_map(|(v, rank)| Patch::to_reach(v, Some((zone, rank))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expected::Verdict;
    use cluster_sim::{COST_ANNOTATION, RANK_ANNOTATION, ZONE_ANNOTATION};
    use rstest::rstest;

    /// A pod of ReplicaSet `rs-1` in zone `a`, bound at `scheduled`, whose
    /// policy verdict is class plus zone cost 10 with a rank.
    fn pod(name: &str, scheduled: u64, rank: Option<&str>, cost: Option<&str>) -> PodView {
        PodView {
            namespace: "shop".into(),
            name: name.into(),
            replica_set: "rs".into(),
            replica_set_uid: "rs-1".into(),
            node: "n1".into(),
            zone: Some("a".into()),
            node_zone: Some("a".into()),
            zone_annotation: rank.map(|_| "a".to_string()),
            cost: cost.map(String::from),
            rank_text: rank.map(String::from),
            rank: rank.and_then(pod_deletion_cost_policy::decision::parse_rank),
            scheduled,
            resource_version: Some(format!("rv-{name}")),
            verdict: Verdict::Annotate {
                base: 10,
                ranked: true,
            },
            balanced: true,
        }
    }

    fn names(views: &[&PodView]) -> Vec<String> {
        views.iter().map(|v| v.name.clone()).collect()
    }

    /// (pod, new rank, new cost) of each patch, in plan order.
    fn changes(patches: &[Patch]) -> Vec<(String, Option<String>, Option<String>)> {
        patches
            .iter()
            .map(|p| {
                (
                    p.pod.clone(),
                    p.annotations.get(RANK_ANNOTATION).cloned(),
                    p.annotations.get(COST_ANNOTATION).cloned(),
                )
            })
            .collect()
    }

    #[rstest]
    #[case::by_rank_held(&[("p3", 1, Some("2")), ("p1", 2, Some("0")), ("p2", 3, Some("1"))], &["p1", "p2", "p3"])]
    #[case::shared_rank_older_binding_first(&[("late", 9, Some("1")), ("early", 5, Some("1")), ("zero", 7, Some("0"))], &["zero", "early", "late"])]
    #[case::unranked_take_the_lowest_free_slots_oldest_first(&[("none-new", 8, None), ("none-old", 1, None), ("ranked", 9, Some("1"))], &["none-old", "ranked", "none-new"])]
    #[case::unreadable_rank_is_none(&[("signed", 3, Some("+1")), ("one", 2, Some("0"))], &["one", "signed"])]
    fn the_order_kept(#[case] pods: &[(&str, u64, Option<&str>)], #[case] want: &[&str]) {
        let views: Vec<PodView> = pods
            .iter()
            .map(|(n, t, r)| pod(n, *t, *r, Some("0")))
            .collect();
        let members: Vec<&PodView> = views.iter().collect();
        assert_eq!(names(&order(&members)), want);
    }

    #[test]
    fn a_burst_s_shared_ranks_become_0_to_n_minus_1_with_their_costs() {
        // Two bindings admitted together both took rank 1; the newer one
        // moves up, and so does the pod above it.
        let views = [
            pod("a", 1, Some("0"), Some("10")),
            pod("b", 2, Some("1"), Some("9")),
            pod("c", 3, Some("1"), Some("9")),
            pod("d", 4, Some("2"), Some("8")),
        ];
        assert_eq!(
            changes(&plan(&views)),
            [
                ("c".into(), Some("2".into()), Some("8".into())),
                ("d".into(), Some("3".into()), Some("7".into())),
            ]
        );
        // The patches carry the version each pod was read at.
        assert_eq!(plan(&views)[0].resource_version.as_deref(), Some("rv-c"));
    }

    #[test]
    fn gaps_close_and_a_cost_from_the_template_is_replaced() {
        let views = [
            pod("a", 1, Some("0"), Some("10")),
            pod("b", 2, Some("3"), Some("7")),
            // Bound before the policy: a cost from its template, no rank;
            // the policy counted it in the lowest free slot, 1.
            pod("t", 0, None, Some("100")),
        ];
        let patches = plan(&views);
        assert_eq!(
            changes(&patches),
            [
                ("t".into(), Some("1".into()), Some("9".into())),
                ("b".into(), Some("2".into()), Some("8".into())),
            ]
        );
        let zone = |p: &Patch| p.annotations.get(ZONE_ANNOTATION).cloned();
        assert_eq!(zone(&patches[0]).as_deref(), Some("a"));
        assert_eq!(zone(&patches[1]), None);
    }

    #[test]
    fn ranks_already_0_to_n_minus_1_are_left_alone() {
        let views = [
            pod("a", 1, Some("1"), Some("9")),
            pod("b", 2, Some("0"), Some("10")),
        ];
        assert_eq!(plan(&views), []);
    }

    #[test]
    fn a_kept_cost_gets_only_its_rank() {
        let mut kept = pod("k", 2, Some("0"), Some("55"));
        kept.verdict = Verdict::Unchanged(pod_deletion_cost_policy::decision::Skip::ExistingCost(
            "55".into(),
        ));
        let views = [pod("a", 1, Some("0"), Some("10")), kept];
        assert_eq!(
            changes(&plan(&views)),
            [("k".into(), Some("1".into()), None)]
        );
    }
}
