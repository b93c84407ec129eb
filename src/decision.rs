//! The cost decision: a pure function of the settings, the node's labels,
//! the pod and its siblings. No host calls, no JSON.

use crate::objects::{Pod, Text};
use crate::selector::LabelLookup;
use crate::settings::Settings;
use std::collections::BTreeSet;
use std::fmt;

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
    /// That rule's (or the default's) cost, a part of `cost`.
    pub class_cost: Option<i32>,
    pub zone: Option<String>,
    /// The zone's cost from `zones.deletionCosts`, a part of `cost`.
    pub zone_cost: Option<i32>,
    /// Set only when balancing applies; the zone is then written too.
    pub rank: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Skip(Skip),
    Annotate(Annotate),
}

/// What became of a binding, as the `decision` audit annotation says it.
/// Its `Display` is the one spelling of each outcome: the policy writes
/// it, and `kubectl deletion-cost` reads it back with [`Outcome::parse`],
/// so the two cannot drift apart. Audit log readers match on it too:
/// changing a spelling changes the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The cost (with balance, the zone and rank too) written on the Binding.
    Annotated,
    /// The binding admitted exactly as it came, and why.
    Unchanged(Skip),
}

impl Outcome {
    /// The audit annotation that carries the outcome.
    pub const AUDIT_KEY: &'static str = "decision";

    /// The outcome an audit annotation names; `None` for any other text.
    pub fn parse(text: &str) -> Option<Outcome> {
        Some(match text {
            "annotated" => Outcome::Annotated,
            "placeholder" => Outcome::Unchanged(Skip::Placeholder),
            "no rule matches" => Outcome::Unchanged(Skip::NothingApplies),
            _ => {
                let cost = text.strip_prefix("existing cost ")?.strip_suffix(" kept")?;
                Outcome::Unchanged(Skip::ExistingCost(cost.to_string()))
            }
        })
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Annotated => f.write_str("annotated"),
            Outcome::Unchanged(Skip::Placeholder) => f.write_str("placeholder"),
            Outcome::Unchanged(Skip::ExistingCost(cost)) => write!(f, "existing cost {cost} kept"),
            Outcome::Unchanged(Skip::NothingApplies) => f.write_str("no rule matches"),
        }
    }
}

/// The first rule whose node selector matches, else the default cost.
pub fn class_cost(settings: &Settings, node: &impl LabelLookup) -> Option<(String, i32)> {
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
pub fn node_zone<'a>(settings: &Settings, node: &'a impl LabelLookup) -> Option<&'a str> {
    let zones = settings.zones.as_ref()?;
    node.label(&zones.topology_key).filter(|z| !z.is_empty())
}

/// Whether `pod` holds capacity rather than serving: its priority class is
/// listed, its labels match the selector, or its priority is at most
/// `maxPriority`. The one test for the pod being bound and for its
/// siblings alike.
pub fn is_placeholder(settings: &Settings, pod: &Pod<'_>) -> bool {
    let Some(p) = &settings.placeholders else {
        return false;
    };
    p.max_priority.is_some_and(|max| pod.priority() <= max)
        || pod
            .spec
            .priority_class_name
            .as_ref()
            .is_some_and(|pc| p.priority_class_names.iter().any(|n| n == pc.as_str()))
        || p.pod_selector
            .as_ref()
            .is_some_and(|sel| sel.matches(&pod.metadata.labels))
}

/// Whether telling placeholders apart needs a pod's labels (a
/// `podSelector`), or its priority class is enough.
pub fn placeholders_need_labels(settings: &Settings) -> bool {
    settings
        .placeholders
        .as_ref()
        .is_some_and(|p| p.pod_selector.is_some())
}

/// Checks that end the evaluation before any cost is computed.
pub fn precheck(settings: &Settings, pod: Option<&Pod<'_>>) -> Option<Skip> {
    let pod = pod?;
    if is_placeholder(settings, pod) {
        return Some(Skip::Placeholder);
    }
    if settings.keep_existing_cost
        && let Some(cost) = &pod.metadata.annotations.cost
    {
        return Some(Skip::ExistingCost(cost.as_str().to_string()));
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
        .filter(|o| o.kind.as_str() == "ReplicaSet" && !o.uid.as_str().is_empty())
        .map(|o| o.uid.as_str())
}

/// Whether a listed pod counts as a sibling of `pod`: same controller,
/// still alive and scheduled, not the pod itself, not a placeholder.
pub fn is_sibling(settings: &Settings, pod: &Pod<'_>, owner_uid: &str, p: &Pod<'_>) -> bool {
    is_live_kin(settings, pod, owner_uid, p) && !p.node_name().is_empty()
}

/// How long before the pod a sibling still unbound in the list may have
/// been created and be taken to be bound just ahead of it. A burst's pods
/// are created within seconds of each other (the ReplicaSet controller
/// creates about 20 a second) and the list trails by less than a second;
/// an older pod still unbound is waiting for room, not being bound now.
pub const PENDING_WINDOW_SECONDS: i64 = 10;

/// Whether a listed pod is a sibling the list shows unbound that was
/// created before `pod`, at most `PENDING_WINDOW_SECONDS` before it: in a
/// burst, one the scheduler is binding at the same moment, or bound a
/// moment ago and not yet in the list. "Before" is by `resourceVersion`:
/// a burst's pods are created many to a second, so `creationTimestamp`
/// cannot order them, and an unbound pod nothing has written since its
/// creation still carries the version of its creation, which etcd numbers
/// in order. A version that is not a decimal number (another storage)
/// makes the sibling not count.
pub fn is_pending_sibling(
    settings: &Settings,
    pod: &Pod<'_>,
    owner_uid: &str,
    p: &Pod<'_>,
) -> bool {
    let created = |p: &Pod<'_>| {
        p.metadata
            .creation_timestamp
            .as_ref()
            .and_then(|t| epoch_seconds(t.as_str()))
    };
    let version = |p: &Pod<'_>| {
        p.metadata
            .resource_version
            .as_ref()
            .and_then(|v| v.as_str().parse::<u64>().ok())
    };
    is_live_kin(settings, pod, owner_uid, p)
        && p.node_name().is_empty()
        && matches!((version(p), version(pod)), (Some(sibling), Some(own)) if sibling < own)
        && match (created(p), created(pod)) {
            (Some(sibling), Some(own)) => sibling <= own && own - sibling <= PENDING_WINDOW_SECONDS,
            _ => false,
        }
}

fn is_live_kin(settings: &Settings, pod: &Pod<'_>, owner_uid: &str, p: &Pod<'_>) -> bool {
    p.controller().is_some_and(|o| o.uid.as_str() == owner_uid)
        && !is_self(p, pod)
        && p.metadata.deletion_timestamp.is_none()
        && !matches!(
            p.status.phase.as_ref().map(Text::as_str),
            Some("Succeeded" | "Failed")
        )
        && !is_placeholder(settings, p)
}

/// Seconds since 1970 of a timestamp as the API server writes every
/// `metav1.Time`: `YYYY-MM-DDTHH:MM:SSZ`, UTC, whole seconds. Anything else
/// is `None` (the sibling is then not taken to be pending). Written here
/// rather than taken from a date crate: this is the one date the module
/// reads, in the one form the API server writes, and a date crate would
/// add to a module loaded by every policy-server replica.
pub fn epoch_seconds(ts: &str) -> Option<i64> {
    let bytes: [u8; 20] = ts.as_bytes().try_into().ok()?;
    let [
        y0,
        y1,
        y2,
        y3,
        b'-',
        m0,
        m1,
        b'-',
        d0,
        d1,
        b'T',
        h0,
        h1,
        b':',
        n0,
        n1,
        b':',
        s0,
        s1,
        b'Z',
    ] = bytes
    else {
        return None;
    };
    let num = |digits: &[u8]| -> Option<i64> {
        digits.iter().try_fold(0i64, |n, &d| {
            d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
        })
    };
    let (y, m, d) = (num(&[y0, y1, y2, y3])?, num(&[m0, m1])?, num(&[d0, d1])?);
    let (hh, mm, ss) = (num(&[h0, h1])?, num(&[n0, n1])?, num(&[s0, s1])?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3_600 + mm * 60 + ss)
}

/// How many of the pending siblings are taken to land in the pod's zone.
/// The pending ones were bound or are being bound just before the pod, by
/// a scheduler that spreads the set over the zones (a zone topology spread
/// constraint, or its default spreading): each goes, in turn, to the zone
/// with the fewest siblings, a zone other than the pod's first when several
/// have as few (the pod itself goes to one of the emptiest, so had one of
/// those gone to its zone, the pod would not have). `bound` counts the
/// siblings the list shows bound, per zone, the pod's zone first.
/// Each of them then takes a free slot in the pod's zone before the pod
/// does: a wrong guess leaves a gap the next binding there fills, where no
/// guess leaves a duplicated rank that nothing fills.
pub fn pending_in_zone(bound: &[(String, u32)], pending: u32) -> u32 {
    let own_before = bound.first().map_or(0, |(_, n)| *n);
    // The pod's own zone last, so that it comes last among equals.
    let mut counts: Vec<u32> = bound
        .iter()
        .skip(1)
        .map(|(_, n)| *n)
        .chain([own_before])
        .collect();
    for _ in 0..pending {
        if let Some(next) = counts.iter_mut().min_by_key(|n| **n) {
            *next = next.saturating_add(1);
        }
    }
    counts.last().map_or(0, |n| n.saturating_sub(own_before))
}

fn is_self(candidate: &Pod<'_>, pod: &Pod<'_>) -> bool {
    if !pod.metadata.uid.as_str().is_empty() && !candidate.metadata.uid.as_str().is_empty() {
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

/// What the ranking knows of the pod's zone: the ranks its siblings bound
/// there hold (`None`: no valid rank annotation) and how many pending
/// siblings are taken to land there (see `pending_in_zone`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ZoneSiblings {
    pub ranks: Vec<Option<u32>>,
    pub pending: u32,
}

/// The lowest rank free in the pod's zone. Held ranks are taken first;
/// each sibling without one then takes the lowest free slot, in list
/// order; then each pending sibling taken to land in the zone; the pod gets
/// the lowest slot left.
pub fn rank_in_zone(zone: &ZoneSiblings) -> u32 {
    let mut slots = FreeSlots::new(zone.ranks.iter().flatten().copied().collect());
    let unranked = zone.ranks.iter().filter(|r| r.is_none()).count() as u64;
    for _ in 0..unranked + u64::from(zone.pending) {
        slots.take_lowest();
    }
    slots.take_lowest()
}

/// The ranks of one zone: those held, and the lowest free one to give next.
/// The policy and the tools that reproduce its ranks count slots this way.
pub struct FreeSlots {
    held: BTreeSet<u32>,
    next: u32,
}

impl FreeSlots {
    pub fn new(held: BTreeSet<u32>) -> Self {
        FreeSlots { held, next: 0 }
    }

    /// Holds a rank that is already given (a later `take_lowest` skips it).
    pub fn hold(&mut self, rank: u32) {
        self.held.insert(rank);
    }

    /// The lowest rank not held, now held.
    pub fn take_lowest(&mut self) -> u32 {
        while self.held.contains(&self.next) {
            self.next = self.next.saturating_add(1);
        }
        self.held.insert(self.next);
        self.next
    }
}

/// The whole decision. `zone` is what is known of the siblings in the
/// pod's zone (see `rank_in_zone`); it is `None` when ranking does not
/// apply (see `ranked_owner`), and then no rank is given.
pub fn decide(
    settings: &Settings,
    node: &impl LabelLookup,
    pod: Option<&Pod<'_>>,
    zone_siblings: Option<&ZoneSiblings>,
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
    let rank = match (zone, zone_siblings) {
        (Some(_), Some(known)) if settings.balance() => Some(rank_in_zone(known)),
        _ => None,
    };
    if class.is_none() && zone_cost.is_none() && rank.is_none() {
        return Decision::Skip(Skip::NothingApplies);
    }
    let total = i64::from(class.as_ref().map_or(0, |c| c.1)) + i64::from(zone_cost.unwrap_or(0))
        - i64::from(rank.unwrap_or(0));
    Decision::Annotate(Annotate {
        cost: saturating_cost(total),
        class_cost: class.as_ref().map(|c| c.1),
        rule: class.map(|c| c.0),
        zone: zone.map(str::to_string),
        zone_cost,
        rank,
    })
}

/// The cost written for the sum of its parts (rule cost + zone cost −
/// rank): the sum held within int32, as the annotation must parse as one.
pub fn saturating_cost(total: i64) -> i32 {
    total.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::{Controller, LabelSet, OwnerReference, PodMeta, PodSpec, PodStatus};
    use crate::settings;
    use rstest::rstest;
    use serde_json::json;

    fn settings(v: serde_json::Value) -> Settings {
        settings::parse(&serde_json::to_vec(&v).unwrap()).unwrap()
    }

    fn labels<'a>(pairs: &[(&'a str, &'a str)]) -> LabelSet<'a> {
        LabelSet(
            pairs
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        )
    }

    fn pod<'a>(name: &'a str, rs: &'a str, node: &'a str) -> Pod<'a> {
        Pod {
            metadata: PodMeta {
                name: name.into(),
                uid: format!("uid-{name}").into(),
                labels: labels(&[("app", "web")]),
                controller: Controller(Some(OwnerReference {
                    kind: "ReplicaSet".into(),
                    uid: rs.into(),
                    controller: Some(true),
                })),
                ..Default::default()
            },
            spec: PodSpec {
                node_name: Some(node.into()),
                priority_class_name: None,
                priority: Some(0),
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

    #[rstest]
    #[case::first_rule_unnamed(&[("tier", "b")], 5, "rules[0]")]
    #[case::second_rule_named(&[("tier", "c")], 7, "any-tier")]
    #[case::no_rule_then_default(&[], -3, "defaultDeletionCost")]
    fn first_matching_rule_wins_then_default(
        #[case] node: &[(&str, &str)],
        #[case] cost: i32,
        #[case] rule: &str,
    ) {
        let s = settings(json!({
            "rules": [
                {"nodeSelector": {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}, "deletionCost": 5},
                {"name": "any-tier", "nodeSelector": {"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, "deletionCost": 7}
            ],
            "defaultDeletionCost": -3
        }));
        let a = annotate(decide(&s, &labels(node), None, None));
        assert_eq!((a.cost, a.rule.as_deref()), (cost, Some(rule)));
        assert_eq!(a.class_cost, Some(cost));
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
        let sibs = zone((0..3).map(Some).collect(), 0);
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

    #[rstest]
    #[case::below(Some(-2), true)]
    #[case::at_the_maximum(Some(-1), true)]
    #[case::above(Some(0), false)]
    #[case::int32_min(Some(i32::MIN), true)]
    // The scheduler counts a pod without a priority as 0.
    #[case::no_priority(None, false)]
    fn max_priority_tells_placeholders(#[case] priority: Option<i32>, #[case] placeholder: bool) {
        let s = settings(json!({"rules": [], "placeholders": {"maxPriority": -1}}));
        let mut p = pod("p", "rs", "n");
        p.spec.priority = priority;
        // A class or labels of its own do not matter when they are not listed.
        p.spec.priority_class_name = Some("batch-low".into());
        assert_eq!(is_placeholder(&s, &p), placeholder);
        let node = labels(&[("eks.amazonaws.com/compute-type", "hybrid")]);
        let want = if placeholder {
            Decision::Skip(Skip::Placeholder)
        } else {
            Decision::Skip(Skip::NothingApplies)
        };
        assert_eq!(decide(&s, &node, Some(&p), None), want);
        // The same test keeps it out of a sibling list.
        let s = settings(json!({"zones": {"balance": true}, "placeholders": {"maxPriority": -1}}));
        let me = pod("me", "rs", "n");
        assert_eq!(is_sibling(&s, &me, "rs", &p), !placeholder);
    }

    #[test]
    fn max_priority_zero_takes_pods_without_a_priority() {
        let s = settings(json!({"placeholders": {"maxPriority": 0}}));
        let mut p = pod("p", "rs", "n");
        p.spec.priority = None;
        assert!(is_placeholder(&s, &p));
        p.spec.priority = Some(1);
        assert!(!is_placeholder(&s, &p));
    }

    /// The spellings audit log readers and `kubectl deletion-cost` rely on.
    #[rstest]
    #[case::annotated(Outcome::Annotated, "annotated")]
    #[case::placeholder(Outcome::Unchanged(Skip::Placeholder), "placeholder")]
    #[case::nothing_applies(Outcome::Unchanged(Skip::NothingApplies), "no rule matches")]
    #[case::existing_cost(
        Outcome::Unchanged(Skip::ExistingCost("42".into())),
        "existing cost 42 kept"
    )]
    // A kept cost is whatever the pod carried, words included.
    #[case::existing_cost_in_words(
        Outcome::Unchanged(Skip::ExistingCost("not kept".into())),
        "existing cost not kept kept"
    )]
    #[case::existing_cost_empty(
        Outcome::Unchanged(Skip::ExistingCost(String::new())),
        "existing cost  kept"
    )]
    fn outcome_spelling_round_trips(#[case] outcome: Outcome, #[case] spelled: &str) {
        assert_eq!(outcome.to_string(), spelled);
        assert_eq!(Outcome::parse(spelled), Some(outcome));
    }

    #[rstest]
    #[case::empty("")]
    #[case::other_case("Annotated")]
    #[case::no_suffix("existing cost 42")]
    #[case::no_prefix("cost 42 kept")]
    #[case::the_tools_own_words("outside the policy's namespaceSelector")]
    fn other_texts_are_no_outcome(#[case] text: &str) {
        assert_eq!(Outcome::parse(text), None);
    }

    #[rstest]
    #[case::alone(&[], 0)]
    #[case::after_held_ranks(&[Some(0), Some(1)], 2)]
    #[case::a_gap(&[Some(0), Some(2)], 1)]
    // Unranked siblings fill free slots after the held ones.
    #[case::unranked_before_held(&[None, Some(0)], 2)]
    #[case::unranked_after_held(&[Some(1), None], 2)]
    #[case::unranked_fill_the_gaps(&[Some(3), None, None], 2)]
    // Duplicated ranks (two pods bound at once) hold one slot.
    #[case::duplicated_rank(&[Some(0), Some(0)], 1)]
    fn rank_takes_lowest_free_slot(#[case] siblings: &[Option<u32>], #[case] rank: u32) {
        assert_eq!(rank_in_zone(&zone(siblings.to_vec(), 0)), rank);
    }

    fn zone(ranks: Vec<Option<u32>>, pending: u32) -> ZoneSiblings {
        ZoneSiblings { ranks, pending }
    }

    #[rstest]
    #[case::none_pending(&[Some(0), Some(1)], 0, 2)]
    // Pending siblings taken to land in the zone take free slots first,
    // gaps included, after the unranked ones.
    #[case::one_pending(&[Some(0), Some(1)], 1, 3)]
    #[case::pending_fill_a_gap(&[Some(0), Some(2)], 1, 3)]
    #[case::after_unranked(&[None, Some(0)], 2, 4)]
    fn pending_siblings_take_slots_before_the_pod(
        #[case] siblings: &[Option<u32>],
        #[case] pending: u32,
        #[case] rank: u32,
    ) {
        assert_eq!(rank_in_zone(&zone(siblings.to_vec(), pending)), rank);
    }

    #[rstest]
    // Nothing pending: nothing lands anywhere.
    #[case::nothing(&[("a", 2), ("b", 2)], "a", 0, 0)]
    // Zones level: the pending go to the other zones first (the pod went to
    // one of the emptiest), and to the pod's zone once the others are ahead.
    #[case::level_one(&[("a", 5), ("b", 5), ("c", 5)], "a", 1, 0)]
    #[case::level_two(&[("a", 5), ("b", 5), ("c", 5)], "a", 2, 0)]
    #[case::level_three(&[("a", 5), ("b", 5), ("c", 5)], "a", 3, 1)]
    #[case::level_seven(&[("a", 5), ("b", 5), ("c", 5)], "b", 7, 2)]
    // The pod's zone is the emptiest: the pending fill it up to the others.
    #[case::own_zone_behind(&[("a", 3), ("b", 5), ("c", 5)], "a", 2, 2)]
    #[case::own_zone_ahead(&[("a", 6), ("b", 5), ("c", 5)], "a", 2, 0)]
    // A zone no bound sibling shows yet is unknown: the pod's own zone
    // counts from 0.
    #[case::no_bound_sibling(&[], "a", 2, 2)]
    #[case::own_zone_unseen(&[("b", 1)], "a", 2, 1)]
    fn pending_siblings_spread_over_the_emptiest_zones(
        #[case] bound: &[(&str, u32)],
        #[case] target: &str,
        #[case] pending: u32,
        #[case] here: u32,
    ) {
        // The pod's zone first, as the policy passes them.
        let mut zones: Vec<(String, u32)> = vec![(target.to_string(), 0)];
        for (z, n) in bound {
            match zones.iter_mut().find(|(known, _)| known == z) {
                Some(known) => known.1 = *n,
                None => zones.push((z.to_string(), *n)),
            }
        }
        assert_eq!(pending_in_zone(&zones, pending), here);
    }

    #[rstest]
    #[case::epoch("1970-01-01T00:00:00Z", Some(0))]
    #[case::leap_day("2024-02-29T12:00:01Z", Some(1_709_208_001))]
    #[case::year_end("2026-12-31T23:59:59Z", Some(1_798_761_599))]
    #[case::fraction("2026-12-07T23:40:17.123Z", None)]
    #[case::offset("2026-12-07T23:40:17+01:00", None)]
    #[case::month_13("2026-13-07T23:40:17Z", None)]
    #[case::not_digits("2026-1x-07T23:40:17Z", None)]
    #[case::empty("", None)]
    fn api_server_timestamps(#[case] ts: &str, #[case] seconds: Option<i64>) {
        assert_eq!(epoch_seconds(ts), seconds);
    }

    #[rstest]
    #[case::zero("0", Some(0))]
    #[case::plain("12", Some(12))]
    #[case::empty("", None)]
    #[case::negative("-1", None)]
    #[case::plus_sign("+1", None)]
    #[case::leading_zero("01", None)]
    #[case::decimal("1.0", None)]
    #[case::word("x", None)]
    #[case::beyond_u32("99999999999", None)]
    fn rank_annotations_must_be_canonical(#[case] written: &str, #[case] rank: Option<u32>) {
        assert_eq!(parse_rank(written), rank);
    }

    #[test]
    fn balance_subtracts_rank() {
        let s = settings(
            json!({"rules": [], "zones": {"topologyKey": "available_zone", "deletionCosts": {"i": 10}, "balance": true}}),
        );
        let node = labels(&[("available_zone", "i")]);
        let p = pod("p", "rs", "n");
        let sibs = zone(vec![Some(0)], 0);
        let a = annotate(decide(&s, &node, Some(&p), Some(&sibs)));
        assert_eq!((a.cost, a.rank, a.zone.as_deref()), (9, Some(1), Some("i")));
        // Rank 0 with no other component still writes cost 0 and the zone.
        let node = labels(&[("available_zone", "h")]);
        let a = annotate(decide(&s, &node, Some(&p), Some(&zone(vec![], 0))));
        assert_eq!((a.cost, a.rank), (0, Some(0)));
        // No zone label: no zone cost, no rank.
        assert_eq!(
            decide(&s, &labels(&[]), Some(&p), Some(&zone(vec![], 0))),
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
        not_controller.metadata.controller = Controller(None);
        listed.extend([
            gone,
            done,
            failed,
            hold,
            not_controller,
            pod("b", "rs", "n2"),
        ]);
        let names: Vec<&str> = listed
            .iter()
            .filter(|p| is_sibling(&s, &me, "rs", p))
            .map(|p| p.metadata.name.as_str())
            .collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn pending_siblings_are_unbound_and_created_just_before() {
        let s = settings(json!({"zones": {"balance": true}}));
        let at =
            |name: &'static str, node: &'static str, ts: Option<&'static str>, rv: &'static str| {
                let mut p = pod(name, "rs", node);
                p.metadata.creation_timestamp = ts.map(Text::from);
                p.metadata.resource_version = Some(Text::from(rv));
                p
            };
        let me = at("me", "", Some("2026-12-07T10:00:10Z"), "500");
        let listed = [
            at("me", "", Some("2026-12-07T10:00:10Z"), "500"),
            at("same-second", "", Some("2026-12-07T10:00:10Z"), "499"),
            at("same-second-after", "", Some("2026-12-07T10:00:10Z"), "501"),
            at("window-start", "", Some("2026-12-07T10:00:00Z"), "20"),
            at("too-old", "", Some("2026-12-07T09:59:59Z"), "10"),
            at("newer", "", Some("2026-12-07T10:00:11Z"), "600"),
            at("bound", "n1", Some("2026-12-07T10:00:09Z"), "400"),
            at("no-timestamp", "", None, "400"),
            at("other-form", "", Some("2026-12-07T10:00:09.5Z"), "400"),
            at(
                "version-not-a-number",
                "",
                Some("2026-12-07T10:00:09Z"),
                "a1",
            ),
        ];
        let names: Vec<&str> = listed
            .iter()
            .filter(|p| is_pending_sibling(&s, &me, "rs", p))
            .map(|p| p.metadata.name.as_str())
            .collect();
        assert_eq!(names, ["same-second", "window-start"]);
    }

    #[test]
    fn ranked_owner_needs_balance_zone_and_replicaset() {
        let s = settings(json!({"zones": {"balance": true}}));
        let p = pod("p", "rs", "n");
        assert_eq!(ranked_owner(&s, Some("a"), &p), Some("rs"));
        assert_eq!(ranked_owner(&s, None, &p), None);
        let mut sts = pod("p", "ss", "n");
        if let Some(o) = sts.metadata.controller.0.as_mut() {
            o.kind = "StatefulSet".into();
        }
        assert_eq!(ranked_owner(&s, Some("a"), &sts), None);
        let s = settings(json!({"zones": {"balance": false}}));
        assert_eq!(ranked_owner(&s, Some("a"), &p), None);
    }
}
