//! The stand-in's objects and their history: every write takes the next
//! resourceVersion and is kept as a watch event, so a WATCH from any
//! resourceVersion replays exactly what changed since.

use super::selector::Filter;
use cluster_sim::Cluster;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The resources the stand-in serves: (plural, kind, namespaced).
pub const RESOURCES: &[(&str, &str, bool)] = &[("nodes", "Node", false), ("pods", "Pod", true)];

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub resource: String,
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    pub name: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Added,
    Modified,
    Deleted,
}

#[derive(Debug, Clone)]
pub struct Event {
    pub resource_version: u64,
    pub change: Change,
    pub key: Key,
    pub object: Value,
    /// The object before a modification, so a watch with a selector can tell
    /// an object entering or leaving its selection.
    pub previous: Option<Value>,
}

impl Event {
    /// The watch event type this change has for a watcher with `filter`,
    /// or `None` when the object is not in its selection before nor after.
    pub fn seen_through(&self, filter: &Filter) -> Option<&'static str> {
        let now = filter.matches(&self.object);
        let before = self.previous.as_ref().is_some_and(|p| filter.matches(p));
        match (self.change, before, now) {
            (Change::Deleted, _, true) => Some("DELETED"),
            (Change::Added, _, true) | (Change::Modified, false, true) => Some("ADDED"),
            (Change::Modified, true, true) => Some("MODIFIED"),
            (Change::Modified, true, false) => Some("DELETED"),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Store {
    resource_version: u64,
    objects: BTreeMap<Key, Value>,
    events: Vec<Event>,
}

impl Store {
    /// Nodes and pods of the simulator's cluster model, pods in its list order.
    pub fn from_cluster(cluster: &Cluster) -> Result<Store, String> {
        let mut store = Store::default();
        for node in &cluster.nodes {
            let object = json!({
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": node.name, "labels": node.labels},
                "spec": {},
                "status": {"conditions": [{"type": "Ready", "status": "True"}]}
            });
            store.put("nodes", object)?;
        }
        for pod in cluster.pods() {
            store.put("pods", pod.to_json())?;
        }
        Ok(store)
    }

    pub fn resource_version(&self) -> u64 {
        self.resource_version
    }

    /// Creates or replaces an object, stamping its resourceVersion (and a
    /// uid and creationTimestamp when it has none); returns the version.
    pub fn put(&mut self, resource: &str, mut object: Value) -> Result<u64, String> {
        let key = key_of(resource, &object)?;
        self.resource_version += 1;
        let rv = self.resource_version;
        let meta = &mut object["metadata"];
        meta["resourceVersion"] = json!(rv.to_string());
        if meta.get("uid").is_none() {
            meta["uid"] = json!(format!(
                "uid-{}-{}-{}",
                key.resource, key.namespace, key.name
            ));
        }
        if meta.get("creationTimestamp").is_none() {
            meta["creationTimestamp"] = json!("2026-11-01T00:00:00Z");
        }
        let previous = self.objects.insert(key.clone(), object.clone());
        let change = if previous.is_some() {
            Change::Modified
        } else {
            Change::Added
        };
        self.events.push(Event {
            resource_version: rv,
            change,
            key,
            object,
            previous,
        });
        Ok(rv)
    }

    pub fn delete(&mut self, resource: &str, namespace: &str, name: &str) -> Option<u64> {
        let key = Key {
            resource: resource.into(),
            namespace: namespace.into(),
            name: name.into(),
        };
        let mut object = self.objects.remove(&key)?;
        self.resource_version += 1;
        let rv = self.resource_version;
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        self.events.push(Event {
            resource_version: rv,
            change: Change::Deleted,
            key,
            object,
            previous: None,
        });
        Some(rv)
    }

    pub fn get(&self, resource: &str, namespace: &str, name: &str) -> Option<&Value> {
        let key = Key {
            resource: resource.into(),
            namespace: namespace.into(),
            name: name.into(),
        };
        self.objects.get(&key)
    }

    /// Objects of `resource` in `namespace` (all namespaces for `None`)
    /// that pass `filter`, ordered by namespace and name as etcd keys are.
    pub fn list(&self, resource: &str, namespace: Option<&str>, filter: &Filter) -> Vec<&Value> {
        self.objects
            .iter()
            .filter(|(k, _)| k.resource == resource && namespace.is_none_or(|ns| k.namespace == ns))
            .map(|(_, v)| v)
            .filter(|v| filter.matches(v))
            .collect()
    }

    /// Changes after `resource_version` to objects of `resource` in `namespace`.
    pub fn events_after(
        &self,
        resource_version: u64,
        resource: &str,
        namespace: Option<&str>,
    ) -> Vec<&Event> {
        let first = self
            .events
            .partition_point(|e| e.resource_version <= resource_version);
        self.events[first..]
            .iter()
            .filter(|e| {
                e.key.resource == resource && namespace.is_none_or(|ns| e.key.namespace == ns)
            })
            .collect()
    }
}

fn key_of(resource: &str, object: &Value) -> Result<Key, String> {
    let Some((_, _, namespaced)) = RESOURCES.iter().find(|(plural, _, _)| *plural == resource)
    else {
        return Err(format!("the stand-in does not serve {resource}"));
    };
    let text = |field: &str| {
        object
            .pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_str)
    };
    let name = text("name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| format!("a {resource} object without metadata.name"))?;
    let namespace = match (namespaced, text("namespace")) {
        (true, Some(ns)) if !ns.is_empty() => ns.to_string(),
        (true, _) => return Err(format!("{resource} {name:?} has no metadata.namespace")),
        (false, _) => String::new(),
    };
    Ok(Key {
        resource: resource.into(),
        namespace,
        name: name.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, app: &str) -> Value {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "shop", "labels": {"app": app}}})
    }

    #[test]
    fn writes_take_versions_and_become_events() {
        let mut s = Store::default();
        assert_eq!(s.put("pods", pod("a", "web")), Ok(1));
        assert_eq!(s.put("pods", pod("b", "web")), Ok(2));
        assert_eq!(
            s.get("pods", "shop", "a").unwrap()["metadata"]["resourceVersion"],
            "1"
        );
        assert_eq!(s.delete("pods", "shop", "a"), Some(3));
        let after_one: Vec<u64> = s
            .events_after(1, "pods", Some("shop"))
            .iter()
            .map(|e| e.resource_version)
            .collect();
        assert_eq!(after_one, [2, 3]);
        assert!(s.events_after(3, "pods", None).is_empty());
        assert_eq!(
            s.put("pods", json!({"metadata": {"name": "x"}})),
            Err("pods \"x\" has no metadata.namespace".into())
        );
    }

    #[test]
    fn a_relabelled_object_leaves_a_selection() {
        let mut s = Store::default();
        s.put("pods", pod("a", "web")).unwrap();
        s.put("pods", pod("a", "db")).unwrap();
        let web = Filter::parse(Some("app=web"), None).unwrap();
        let db = Filter::parse(Some("app=db"), None).unwrap();
        let events = s.events_after(0, "pods", Some("shop"));
        let seen = |f: &Filter| events.iter().map(|e| e.seen_through(f)).collect::<Vec<_>>();
        assert_eq!(seen(&web), [Some("ADDED"), Some("DELETED")]);
        assert_eq!(seen(&db), [None, Some("ADDED")]);
        assert_eq!(s.list("pods", Some("shop"), &db).len(), 1);
    }
}
