//! What answers the policy's pod lookups without walking every pod of the
//! cluster on every binding: each pod's position by namespace and name, the
//! members of every (namespace, label selector) list asked for so far, and
//! each pod's list item serialised once.
//!
//! The cluster keeps it in step: a pod added is appended to the lists it
//! matches, a pod changed has its item dropped (and, when its name,
//! namespace or labels changed, the positions or lists with it), anything
//! else resets the whole index, which is rebuilt on its next use.

use crate::Pod;
use std::collections::{BTreeMap, HashMap};

/// `key=value` terms that all have to match.
pub type Selector = Vec<(String, String)>;

/// A pod's identity and labels before a change, to tell what the change
/// touched.
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
    /// Positions, in list order, of the pods matching each list asked for.
    lists: HashMap<(String, Selector), Vec<usize>>,
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
        for ((namespace, selector), members) in &mut self.lists {
            if matches(p, namespace, selector) {
                members.push(i);
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
        }
    }

    /// The list items of the pods in `namespace` matching `selector`, in
    /// list order, each rendered by `item` the first time it is needed.
    pub fn list<'a>(
        &'a mut self,
        pods: &[Pod],
        namespace: &str,
        selector: Selector,
        item: impl Fn(&Pod) -> String,
    ) -> impl Iterator<Item = &'a str> {
        self.items.resize(pods.len(), None);
        let members = self
            .lists
            .entry((namespace.to_string(), selector))
            .or_insert_with_key(|(namespace, selector)| {
                (0..pods.len())
                    .filter(|&i| matches(&pods[i], namespace, selector))
                    .collect()
            });
        for &i in members.iter() {
            if self.items[i].is_none() {
                self.items[i] = Some(item(&pods[i]).into_boxed_str());
            }
        }
        let items = &self.items;
        members
            .iter()
            .filter_map(move |&i| items.get(i).and_then(|s| s.as_deref()))
    }
}
