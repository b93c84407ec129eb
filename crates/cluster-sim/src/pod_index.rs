//! What answers the policy's pod lookups without walking every pod of the
//! cluster on every binding: each pod's position by namespace and name, the
//! members of every (namespace, label selector) list asked for so far, each
//! pod's list item serialised once, and each list's items joined into one
//! text that a changed pod patches in place, so that answering a list of
//! thousands of pods is one copy.
//!
//! The cluster keeps it in step: a pod added is appended to the lists it
//! matches, a pod changed has its item re-rendered where it appears (and,
//! when its name, namespace or labels changed, the positions or lists are
//! dropped), anything else resets the whole index, which is rebuilt on its
//! next use.

use crate::Pod;
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;

/// `key=value` terms that all have to match.
pub type Selector = Vec<(String, String)>;

/// A pod's identity and labels before a change, to tell what the change
/// touched.
#[derive(Debug, Clone)]
pub struct Before {
    namespace: String,
    name: String,
    labels: BTreeMap<String, String>,
}

impl Before {
    pub fn of(p: &Pod) -> Before {
        Before {
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            labels: p.labels.clone(),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct PodIndex {
    /// namespace → name → position of the first pod of that name; built on
    /// first use after a reset.
    positions: Option<HashMap<String, HashMap<String, usize>>>,
    /// Each pod's list item, by position: absent until asked for and after
    /// the pod changed.
    items: Vec<Option<Box<str>>>,
    /// Every list asked for, by namespace and selector.
    lists: HashMap<(String, Selector), List>,
}

/// One list's members and their items joined by commas.
#[derive(Debug, Clone, Default)]
struct List {
    /// Positions of the matching pods, ascending: list order.
    members: Vec<usize>,
    /// Whether `text` and `spans` hold every member's item.
    written: bool,
    text: String,
    /// Where each member's item is in `text`.
    spans: Vec<Range<usize>>,
    /// Members (indexes into `members`) whose item changed since.
    stale: Vec<usize>,
}

impl List {
    fn write(&mut self, items: &[Option<Box<str>>]) {
        if self.written && self.stale.len() * 8 <= self.members.len() {
            self.patch(items);
            return;
        }
        self.text.clear();
        self.spans.clear();
        for (slot, &i) in self.members.iter().enumerate() {
            if slot > 0 {
                self.text.push(',');
            }
            let start = self.text.len();
            self.text.push_str(item_at(items, i));
            self.spans.push(start..self.text.len());
        }
        self.stale.clear();
        self.written = true;
    }

    /// Replaces the stale items in place, shifting the spans after each.
    fn patch(&mut self, items: &[Option<Box<str>>]) {
        self.stale.sort_unstable();
        self.stale.dedup();
        for &slot in &self.stale {
            let new = item_at(items, self.members[slot]);
            let old = self.spans[slot].clone();
            self.text.replace_range(old.clone(), new);
            self.spans[slot] = old.start..old.start + new.len();
            if new.len() != old.len() {
                for span in &mut self.spans[slot + 1..] {
                    *span = span.start + new.len() - old.len()..span.end + new.len() - old.len();
                }
            }
        }
        self.stale.clear();
    }
}

fn item_at(items: &[Option<Box<str>>], i: usize) -> &str {
    items.get(i).and_then(|s| s.as_deref()).unwrap_or_default()
}

pub fn matches(p: &Pod, namespace: &str, selector: &[(String, String)]) -> bool {
    p.namespace == namespace && selector.iter().all(|(k, v)| p.labels.get(k) == Some(v))
}

impl PodIndex {
    pub fn reset(&mut self) {
        *self = PodIndex::default();
    }

    pub fn position(&mut self, pods: &[Pod], namespace: &str, name: &str) -> Option<usize> {
        let positions = self.positions.get_or_insert_with(|| {
            let mut map: HashMap<String, HashMap<String, usize>> = HashMap::new();
            for (i, p) in pods.iter().enumerate() {
                map.entry(p.namespace.clone())
                    .or_default()
                    .entry(p.name.clone())
                    .or_insert(i);
            }
            map
        });
        positions.get(namespace)?.get(name).copied()
    }

    /// The last pod of `pods` was just added.
    pub fn pushed(&mut self, pods: &[Pod]) {
        let Some((p, i)) = pods.last().map(|p| (p, pods.len() - 1)) else {
            return;
        };
        if let Some(positions) = &mut self.positions {
            positions
                .entry(p.namespace.clone())
                .or_default()
                .entry(p.name.clone())
                .or_insert(i);
        }
        for ((namespace, selector), list) in &mut self.lists {
            if matches(p, namespace, selector) {
                list.members.push(i);
                list.written = false;
            }
        }
    }

    /// The pod at `i` changed from `before` to `after`.
    pub fn changed(&mut self, i: usize, before: &Before, after: &Pod) {
        if let Some(item) = self.items.get_mut(i) {
            *item = None;
        }
        if before.namespace != after.namespace || before.name != after.name {
            self.positions = None;
        }
        if before.namespace != after.namespace || before.labels != after.labels {
            self.lists.clear();
            return;
        }
        for list in self.lists.values_mut() {
            if let Ok(slot) = list.members.binary_search(&i) {
                list.stale.push(slot);
            }
        }
    }

    /// The list items, joined by commas, of the pods in `namespace`
    /// matching `selector`, in list order; `item` renders a pod's item the
    /// first time it is needed.
    pub fn list(
        &mut self,
        pods: &[Pod],
        namespace: &str,
        selector: Selector,
        item: impl Fn(&Pod) -> String,
    ) -> &str {
        self.items.resize(pods.len(), None);
        let list = self
            .lists
            .entry((namespace.to_string(), selector))
            .or_insert_with_key(|(namespace, selector)| List {
                members: (0..pods.len())
                    .filter(|&i| matches(&pods[i], namespace, selector))
                    .collect(),
                ..List::default()
            });
        for &i in &list.members {
            if self.items[i].is_none() {
                self.items[i] = Some(item(&pods[i]).into_boxed_str());
            }
        }
        list.write(&self.items);
        &list.text
    }
}
