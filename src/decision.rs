//! The cost decision: a pure function of the settings, the node's labels,
//! the pod and its siblings. No host calls, no JSON.

use crate::objects::Pod;
use crate::selector::Labels;
use crate::settings::Settings;
use std::collections::BTreeSet;

/// Why a pod is left exactly as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// Capacity-holding pod: never annotated, never counted.
    Placeholder,
    /// `keepExistingCost` and the pod already carries a cost.
    ExistingCost(String),
    /// No rule, default, zone cost or rank applies.
    NothingApplies,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotate {
    pub cost: i32,
    /// The rule that matched (`rules[i]` when it has no name), or
    /// `defaultDeletionCost`; `None` when neither applies.
    pub rule: Option<String>,
    pub class_cost: Option<i32>,
    pub zone: Option<String>,
    pub zone_cost: Option<i32>,
    /// Set only when balancing applies; the zone is then written too.
    pub rank: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Skip(Skip),
    Annotate(Annotate),
}

/// A sibling reduced to what ranking needs: where it runs and the rank it
/// holds (both as recorded by this policy or resolved from its node).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sibling {
    pub zone: Option<String>,
    pub rank: Option<u32>,
}

/// The first rule whose node selector matches, else the default cost.
pub fn class_cost(settings: &Settings, node: &Labels) -> Option<(String, i32)> {
    settings
        .rules
        .iter()
        .enumerate()
        .find(|(_, r)| r.node_selector.matches(node))
        .map(|(i, r)| {
            let name = r.name.clone().unwrap_or_else(|| format!("rules[{i}]"));
            (name, r.deletion_cost)
        })
        .or_else(|| {
            settings
                .default_deletion_cost
                .map(|c| ("defaultDeletionCost".to_string(), c))
        })
}

/// The node's zone, when zones are configured and the node has a non-empty
/// value for the topology key.
pub fn node_zone<'a>(settings: &Settings, node: &'a Labels) -> Option<&'a str> {
    let zones = settings.zones.as_ref()?;
    node.get(&zones.topology_key)
        .map(String::as_str)
        .filter(|z| !z.is_empty())
}

pub fn is_placeholder(settings: &Settings, pod: &Pod) -> bool {
    let Some(p) = &settings.placeholders else {
        return false;
    };
    pod.spec
        .priority_class_name
        .as_ref()
        .is_some_and(|pc| p.priority_class_names.contains(pc))
        || p.pod_selector
            .as_ref()
            .is_some_and(|sel| sel.matches(&pod.metadata.labels))
}

/// Checks that end the evaluation before any cost is computed.
pub fn precheck(settings: &Settings, pod: Option<&Pod>) -> Option<Skip> {
    let pod = pod?;
    if is_placeholder(settings, pod) {
        return Some(Skip::Placeholder);
    }
    if settings.keep_existing_cost
        && let Some(cost) = &pod.metadata.annotations.cost
    {
        return Some(Skip::ExistingCost(cost.clone()));
    }
    None
}

/// The ReplicaSet that controls the pod, when ranking can apply to it:
/// balance on, the node has a zone, and a ReplicaSet is the controller.
pub fn ranked_owner<'a>(
    settings: &Settings,
    node_zone: Option<&str>,
    pod: &'a Pod,
) -> Option<&'a str> {
    if !settings.balance() || node_zone.is_none() {
        return None;
    }
    pod.controller()
        .filter(|o| o.kind == "ReplicaSet" && !o.uid.is_empty())
        .map(|o| o.uid.as_str())
}

/// The listed pods that count as siblings of `pod`: same controller, still
/// alive and scheduled, not the pod itself, not placeholders.
pub fn siblings<'a>(
    settings: &'a Settings,
    pod: &'a Pod,
    owner_uid: &'a str,
    listed: &'a [Pod],
) -> impl Iterator<Item = &'a Pod> + 'a {
    listed.iter().filter(move |p| {
        p.controller().is_some_and(|o| o.uid == owner_uid)
            && !is_self(p, pod)
            && p.metadata.deletion_timestamp.is_none()
            && !matches!(p.status.phase.as_deref(), Some("Succeeded" | "Failed"))
            && !p.node_name().is_empty()
            && !is_placeholder(settings, p)
    })
}

fn is_self(candidate: &Pod, pod: &Pod) -> bool {
    if !pod.metadata.uid.is_empty() && !candidate.metadata.uid.is_empty() {
        candidate.metadata.uid == pod.metadata.uid
    } else {
        candidate.metadata.name == pod.metadata.name
    }
}

/// A rank annotation as this policy writes it: plain decimal, no sign.
/// Anything else is treated as no rank, so the sibling takes a free slot.
pub fn parse_rank(value: &str) -> Option<u32> {
    let canonical = !value.is_empty()
        && value.bytes().all(|b| b.is_ascii_digit())
        && (value == "0" || !value.starts_with('0'));
    if canonical { value.parse().ok() } else { None }
}

/// The lowest rank free in `zone`. Ranks held by annotated siblings are
/// taken first; each sibling without one then takes the lowest free slot,
/// in list order; the pod gets the lowest slot left.
pub fn rank_in_zone(zone: &str, siblings: &[Sibling]) -> u32 {
    let in_zone = || siblings.iter().filter(|s| s.zone.as_deref() == Some(zone));
    let mut held: BTreeSet<u32> = in_zone().filter_map(|s| s.rank).collect();
    let mut next = 0u32;
    let mut take_lowest = |held: &mut BTreeSet<u32>| {
        while held.contains(&next) {
            next = next.saturating_add(1);
        }
        held.insert(next);
        next
    };
    for _ in in_zone().filter(|s| s.rank.is_none()) {
        take_lowest(&mut held);
    }
    take_lowest(&mut held)
}

/// The whole decision. `siblings` is `None` when ranking does not apply
/// (see `ranked_owner`), in which case no rank is given.
pub fn decide(
    settings: &Settings,
    node: &Labels,
    pod: Option<&Pod>,
    siblings: Option<&[Sibling]>,
) -> Decision {
    if let Some(skip) = precheck(settings, pod) {
        return Decision::Skip(skip);
    }
    let class = class_cost(settings, node);
    let zone = node_zone(settings, node);
    let zone_cost = zone.and_then(|z| {
        settings
            .zones
            .as_ref()
            .and_then(|zs| zs.deletion_costs.get(z).copied())
    });
    let rank = match (zone, siblings) {
        (Some(z), Some(sibs)) if settings.balance() => Some(rank_in_zone(z, sibs)),
        _ => None,
    };
    if class.is_none() && zone_cost.is_none() && rank.is_none() {
        return Decision::Skip(Skip::NothingApplies);
    }
    let total = i64::from(class.as_ref().map_or(0, |c| c.1)) + i64::from(zone_cost.unwrap_or(0))
        - i64::from(rank.unwrap_or(0));
    let cost = total.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
    Decision::Annotate(Annotate {
        cost,
        class_cost: class.as_ref().map(|c| c.1),
        rule: class.map(|c| c.0),
        zone: zone.map(str::to_string),
        zone_cost,
        rank,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::{OwnerReference, PodMeta, PodSpec, PodStatus};
    use crate::settings;
    use serde_json::json;

    fn settings(v: serde_json::Value) -> Settings {
        settings::parse(&serde_json::to_vec(&v).unwrap()).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn pod(name: &str, rs: &str, node: &str) -> Pod {
        Pod {
            metadata: PodMeta {
                name: name.into(),
                uid: format!("uid-{name}"),
                labels: labels(&[("app", "web")]),
                owner_references: vec![OwnerReference {
                    kind: "ReplicaSet".into(),
                    uid: rs.into(),
                    controller: Some(true),
                }],
                ..Default::default()
            },
            spec: PodSpec {
                node_name: Some(node.into()),
                priority_class_name: None,
            },
            status: PodStatus {
                phase: Some("Running".into()),
            },
        }
    }

    fn annotate(d: Decision) -> Annotate {
        match d {
            Decision::Annotate(a) => a,
            other => panic!("expected an annotation, got {other:?}"),
        }
    }

    #[test]
    fn eks_default() {
        let s = Settings::default();
        let hybrid = labels(&[("eks.amazonaws.com/compute-type", "hybrid")]);
        let a = annotate(decide(&s, &hybrid, None, None));
        assert_eq!(a.cost, 1);
        assert_eq!(a.rule.as_deref(), Some("hybrid"));
        assert_eq!(a.rank, None);
        assert_eq!(
            decide(
                &s,
                &labels(&[("eks.amazonaws.com/compute-type", "ec2")]),
                None,
                None
            ),
            Decision::Skip(Skip::NothingApplies)
        );
    }

    #[test]
    fn first_matching_rule_wins_then_default() {
        let s = settings(json!({
            "rules": [
                {"nodeSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}, "deletionCost": 5},
                {"name": "any-tier", "nodeSelector": {"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, "deletionCost": 7}
            ],
            "defaultDeletionCost": -3
        }));
        let a = annotate(decide(&s, &labels(&[("tier", "b")]), None, None));
        assert_eq!((a.cost, a.rule.as_deref()), (5, Some("rules[0]")));
        let a = annotate(decide(&s, &labels(&[("tier", "c")]), None, None));
        assert_eq!((a.cost, a.rule.as_deref()), (7, Some("any-tier")));
        let a = annotate(decide(&s, &labels(&[]), None, None));
        assert_eq!(
            (a.cost, a.rule.as_deref()),
            (-3, Some("defaultDeletionCost"))
        );
    }

    #[test]
    fn zone_cost_adds_to_class_cost() {
        let s = settings(
            json!({"rules": [], "zones": {"topologyKey": "available_zone", "deletionCosts": {"i": 10, "k": 0}}}),
        );
        let a = annotate(decide(&s, &labels(&[("available_zone", "i")]), None, None));
        assert_eq!(
            (a.cost, a.zone.as_deref(), a.zone_cost),
            (10, Some("i"), Some(10))
        );
        let a = annotate(decide(&s, &labels(&[("available_zone", "k")]), None, None));
        assert_eq!(a.cost, 0);
        // A zone without a cost and no rule: nothing applies.
        assert_eq!(
            decide(&s, &labels(&[("available_zone", "h")]), None, None),
            Decision::Skip(Skip::NothingApplies)
        );
        let s = settings(json!({"zones": {"deletionCosts": {"a": 4}}}));
        let node = labels(&[
            ("eks.amazonaws.com/compute-type", "hybrid"),
            ("topology.kubernetes.io/zone", "a"),
        ]);
        assert_eq!(annotate(decide(&s, &node, None, None)).cost, 5);
    }

    #[test]
    fn saturates_at_int32_bounds() {
        let s = settings(
            json!({"defaultDeletionCost": 2147483647, "zones": {"deletionCosts": {"a": 2147483647}}}),
        );
        let node = labels(&[("topology.kubernetes.io/zone", "a")]);
        assert_eq!(annotate(decide(&s, &node, None, None)).cost, i32::MAX);
        let s =
            settings(json!({"defaultDeletionCost": -2147483648i64, "zones": {"balance": true}}));
        let p = pod("p", "rs", "n");
        let sibs: Vec<Sibling> = (0..3)
            .map(|r| Sibling {
                zone: Some("a".into()),
                rank: Some(r),
            })
            .collect();
        let a = annotate(decide(&s, &node, Some(&p), Some(&sibs)));
        assert_eq!((a.cost, a.rank), (i32::MIN, Some(3)));
    }

    #[test]
    fn placeholders_and_existing_costs_are_left_alone() {
        let s = settings(json!({
            "placeholders": {"priorityClassNames": ["default-priority-class"], "podSelector": {"matchLabels": {"app": "ack-place-holder"}}},
            "keepExistingCost": true
        }));
        let node = labels(&[("eks.amazonaws.com/compute-type", "hybrid")]);
        let mut p = pod("p", "rs", "n");
        p.spec.priority_class_name = Some("default-priority-class".into());
        assert_eq!(
            decide(&s, &node, Some(&p), None),
            Decision::Skip(Skip::Placeholder)
        );
        let mut p = pod("p", "rs", "n");
        p.metadata.labels = labels(&[("app", "ack-place-holder")]);
        assert_eq!(
            decide(&s, &node, Some(&p), None),
            Decision::Skip(Skip::Placeholder)
        );
        let mut p = pod("p", "rs", "n");
        p.metadata.annotations.cost = Some("100".into());
        assert_eq!(
            decide(&s, &node, Some(&p), None),
            Decision::Skip(Skip::ExistingCost("100".into()))
        );
        let p = pod("p", "rs", "n");
        assert_eq!(annotate(decide(&s, &node, Some(&p), None)).cost, 1);
    }

    #[test]
    fn rank_takes_lowest_free_slot() {
        let sib = |z: &str, r: Option<u32>| Sibling {
            zone: Some(z.into()),
            rank: r,
        };
        assert_eq!(rank_in_zone("i", &[]), 0);
        assert_eq!(
            rank_in_zone("i", &[sib("i", Some(0)), sib("i", Some(1))]),
            2
        );
        assert_eq!(
            rank_in_zone("i", &[sib("i", Some(0)), sib("i", Some(2))]),
            1
        );
        assert_eq!(
            rank_in_zone("i", &[sib("k", Some(0)), sib("k", Some(1))]),
            0
        );
        // Unranked siblings fill free slots after the held ones.
        assert_eq!(rank_in_zone("i", &[sib("i", None), sib("i", Some(0))]), 2);
        assert_eq!(rank_in_zone("i", &[sib("i", Some(1)), sib("i", None)]), 2);
        assert_eq!(
            rank_in_zone("i", &[sib("i", Some(3)), sib("i", None), sib("i", None)]),
            2
        );
    }

    #[test]
    fn rank_annotations_must_be_canonical() {
        assert_eq!(parse_rank("0"), Some(0));
        assert_eq!(parse_rank("12"), Some(12));
        for bad in ["", "-1", "+1", "01", "1.0", "x", "99999999999"] {
            assert_eq!(parse_rank(bad), None, "{bad}");
        }
    }

    #[test]
    fn balance_subtracts_rank() {
        let s = settings(
            json!({"rules": [], "zones": {"topologyKey": "available_zone", "deletionCosts": {"i": 10}, "balance": true}}),
        );
        let node = labels(&[("available_zone", "i")]);
        let p = pod("p", "rs", "n");
        let sibs = [Sibling {
            zone: Some("i".into()),
            rank: Some(0),
        }];
        let a = annotate(decide(&s, &node, Some(&p), Some(&sibs)));
        assert_eq!((a.cost, a.rank, a.zone.as_deref()), (9, Some(1), Some("i")));
        // Rank 0 with no other component still writes cost 0 and the zone.
        let node = labels(&[("available_zone", "h")]);
        let a = annotate(decide(&s, &node, Some(&p), Some(&[])));
        assert_eq!((a.cost, a.rank), (0, Some(0)));
        // No zone label: no zone cost, no rank.
        assert_eq!(
            decide(&s, &labels(&[]), Some(&p), Some(&[])),
            Decision::Skip(Skip::NothingApplies)
        );
    }

    #[test]
    fn sibling_filter() {
        let s = settings(
            json!({"zones": {"balance": true}, "placeholders": {"priorityClassNames": ["hold"]}}),
        );
        let me = pod("me", "rs", "n1");
        let mut listed = vec![
            pod("me", "rs", "n1"),
            pod("a", "rs", "n1"),
            pod("other-rs", "rs2", "n1"),
            pod("unscheduled", "rs", ""),
        ];
        let mut gone = pod("gone", "rs", "n1");
        gone.metadata.deletion_timestamp = Some(crate::objects::IgnoredAnyEq);
        let mut done = pod("done", "rs", "n1");
        done.status.phase = Some("Succeeded".into());
        let mut failed = pod("failed", "rs", "n1");
        failed.status.phase = Some("Failed".into());
        let mut hold = pod("hold", "rs", "n1");
        hold.spec.priority_class_name = Some("hold".into());
        let mut not_controller = pod("nc", "rs", "n1");
        not_controller.metadata.owner_references[0].controller = None;
        listed.extend([
            gone,
            done,
            failed,
            hold,
            not_controller,
            pod("b", "rs", "n2"),
        ]);
        let names: Vec<&str> = siblings(&s, &me, "rs", &listed)
            .map(|p| p.metadata.name.as_str())
            .collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn ranked_owner_needs_balance_zone_and_replicaset() {
        let s = settings(json!({"zones": {"balance": true}}));
        let p = pod("p", "rs", "n");
        assert_eq!(ranked_owner(&s, Some("a"), &p), Some("rs"));
        assert_eq!(ranked_owner(&s, None, &p), None);
        let mut sts = pod("p", "ss", "n");
        sts.metadata.owner_references[0].kind = "StatefulSet".into();
        assert_eq!(ranked_owner(&s, Some("a"), &sts), None);
        let s = settings(json!({"zones": {"balance": false}}));
        assert_eq!(ranked_owner(&s, Some("a"), &p), None);
    }
}
