//! What the stand-in answers: discovery, GET of one object, LIST (with
//! selectors and `limit`/`continue`) and WATCH streams, in the shapes the
//! API server gives kube-rs.

use super::Shared;
use super::http::{self, Request};
use super::selector::Filter;
use super::store::RESOURCES;
use serde_json::{Value, json};
use std::io::{self, Write};
use std::time::{Duration, Instant};

/// A watch without `timeoutSeconds` still ends: the API server picks 30 to
/// 60 minutes; tests need no more than this.
const DEFAULT_WATCH_SECONDS: u64 = 300;

/// Where a path points, once `/api/v1` is taken off.
enum Target<'a> {
    Collection {
        resource: &'a str,
        namespace: Option<&'a str>,
    },
    Object {
        resource: &'a str,
        namespace: &'a str,
        name: &'a str,
    },
}

pub fn serve(shared: &Shared, request: &Request, out: &mut impl Write) -> io::Result<()> {
    if request.method != "GET" {
        let body = status(
            405,
            "MethodNotAllowed",
            &format!("the stand-in serves GET only, not {}", request.method),
        );
        return http::write_response(out, 405, &body);
    }
    let segments: Vec<&str> = request.path.trim_matches('/').split('/').collect();
    let discovery = match segments.as_slice() {
        ["version"] => Some(
            json!({"major": "1", "minor": "32", "gitVersion": "v1.32.0", "platform": "linux/amd64"}),
        ),
        ["api"] => Some(json!({"kind": "APIVersions", "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": shared.addr.to_string()}]})),
        ["apis"] => Some(json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []})),
        ["api", "v1"] => Some(core_resources()),
        _ => None,
    };
    if let Some(doc) = discovery {
        return http::write_response(out, 200, doc.to_string().as_bytes());
    }
    match target(&segments) {
        Some(Target::Object {
            resource,
            namespace,
            name,
        }) => get(shared, resource, namespace, name, out),
        Some(Target::Collection {
            resource,
            namespace,
        }) => {
            let filter = match Filter::parse(
                request.query.get("labelSelector").map(String::as_str),
                request.query.get("fieldSelector").map(String::as_str),
            ) {
                Ok(f) => f,
                Err(e) => return http::write_response(out, 400, &status(400, "BadRequest", &e)),
            };
            if request
                .query
                .get("watch")
                .is_some_and(|w| w == "true" || w == "1")
            {
                watch(shared, request, resource, namespace, &filter, out)
            } else {
                list(shared, request, resource, namespace, &filter, out)
            }
        }
        None => {
            let message = format!(
                "the server could not find the requested resource ({})",
                request.path
            );
            http::write_response(out, 404, &status(404, "NotFound", &message))
        }
    }
}

fn target<'a>(segments: &[&'a str]) -> Option<Target<'a>> {
    let namespaced = |r: &str| {
        RESOURCES
            .iter()
            .find(|(plural, _, _)| *plural == r)
            .map(|(_, _, n)| *n)
    };
    match *segments {
        ["api", "v1", resource] => namespaced(resource).map(|_| Target::Collection {
            resource,
            namespace: None,
        }),
        ["api", "v1", resource, name] if namespaced(resource) == Some(false) => {
            Some(Target::Object {
                resource,
                namespace: "",
                name,
            })
        }
        ["api", "v1", "namespaces", ns, resource] if namespaced(resource) == Some(true) => {
            Some(Target::Collection {
                resource,
                namespace: Some(ns),
            })
        }
        ["api", "v1", "namespaces", ns, resource, name] if namespaced(resource) == Some(true) => {
            Some(Target::Object {
                resource,
                namespace: ns,
                name,
            })
        }
        _ => None,
    }
}

fn core_resources() -> Value {
    let mut resources: Vec<Value> = RESOURCES
        .iter()
        .map(|(plural, kind, namespaced)| {
            json!({"name": plural, "singularName": kind.to_lowercase(), "namespaced": namespaced,
                   "kind": kind, "verbs": ["get", "list", "watch"]})
        })
        .collect();
    // The sub-resource the policy's webhook is registered for.
    resources.push(
        json!({"name": "pods/binding", "singularName": "", "namespaced": true,
                          "kind": "Binding", "verbs": ["create"]}),
    );
    json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": resources})
}

/// A `Status` object as the API server sends with an error code.
pub fn status(code: u16, reason: &str, message: &str) -> Vec<u8> {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
    .to_string()
    .into_bytes()
}

fn get(
    shared: &Shared,
    resource: &str,
    namespace: &str,
    name: &str,
    out: &mut impl Write,
) -> io::Result<()> {
    let found = shared
        .store()
        .get(resource, namespace, name)
        .map(Value::to_string);
    match found {
        Some(body) => http::write_response(out, 200, body.as_bytes()),
        None => {
            let mut not_found: Value = serde_json::from_slice(&status(
                404,
                "NotFound",
                &format!("{resource} \"{name}\" not found"),
            ))
            .unwrap_or_default();
            not_found["details"] = json!({"name": name, "kind": resource});
            http::write_response(out, 404, not_found.to_string().as_bytes())
        }
    }
}

fn kind_of(resource: &str) -> &'static str {
    RESOURCES
        .iter()
        .find(|(plural, _, _)| *plural == resource)
        .map_or("", |(_, kind, _)| kind)
}

/// One page of a LIST. The continue token is the key of the page's last
/// object: pages read the current state (the API server would read the
/// first page's snapshot; the tests do not write while paging).
fn list(
    shared: &Shared,
    request: &Request,
    resource: &str,
    namespace: Option<&str>,
    filter: &Filter,
    out: &mut impl Write,
) -> io::Result<()> {
    let limit = match request.query.get("limit").map(|l| l.parse::<usize>()) {
        None | Some(Ok(0)) => usize::MAX,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return http::write_response(
                out,
                400,
                &status(400, "BadRequest", "limit is not a number"),
            );
        }
    };
    let after = request.query.get("continue").filter(|c| !c.is_empty());
    let body = {
        let store = shared.store();
        let all = store.list(resource, namespace, filter);
        let start = after.map_or(0, |token| {
            all.partition_point(|o| object_key(o).as_str() <= token.as_str())
        });
        let page: Vec<&Value> = all[start..].iter().take(limit).copied().collect();
        let remaining = all.len() - start - page.len();
        let mut metadata = json!({"resourceVersion": store.resource_version().to_string()});
        if remaining > 0 {
            metadata["continue"] = json!(page.last().map(|o| object_key(o)).unwrap_or_default());
            metadata["remainingItemCount"] = json!(remaining);
        }
        json!({"apiVersion": "v1", "kind": format!("{}List", kind_of(resource)), "metadata": metadata, "items": page})
            .to_string()
    };
    http::write_response(out, 200, body.as_bytes())
}

/// `namespace/name`, which orders as the store lists.
fn object_key(object: &Value) -> String {
    let text = |f: &str| {
        object
            .pointer(&format!("/metadata/{f}"))
            .and_then(Value::as_str)
            .unwrap_or("")
    };
    format!("{}/{}", text("namespace"), text("name"))
}

fn watch(
    shared: &Shared,
    request: &Request,
    resource: &str,
    namespace: Option<&str>,
    filter: &Filter,
    out: &mut impl Write,
) -> io::Result<()> {
    let seconds = request
        .query
        .get("timeoutSeconds")
        .and_then(|t| t.parse().ok())
        .unwrap_or(DEFAULT_WATCH_SECONDS);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let bookmarks = request
        .query
        .get("allowWatchBookmarks")
        .is_some_and(|b| b == "true");
    let kind = kind_of(resource);
    http::start_chunked(out)?;
    // Without a version, or with "0", a watch starts with the current
    // objects as ADDED events, as the API server does.
    let mut cursor = match request
        .query
        .get("resourceVersion")
        .and_then(|v| v.parse::<u64>().ok())
    {
        Some(rv) if rv > 0 => rv,
        _ => {
            let (lines, rv) = {
                let store = shared.store();
                let lines: String = store
                    .list(resource, namespace, filter)
                    .iter()
                    .map(|o| event_line("ADDED", o))
                    .collect();
                (lines, store.resource_version())
            };
            http::write_chunk(out, lines.as_bytes())?;
            rv
        }
    };
    let mut last_bookmark = Instant::now();
    while Instant::now() < deadline && !shared.stopping() {
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .min(
                shared
                    .bookmark_interval
                    .saturating_sub(last_bookmark.elapsed()),
            )
            .max(Duration::from_millis(1));
        let (lines, rv) = next_events(shared, cursor, wait, resource, namespace, filter);
        cursor = rv;
        if !lines.is_empty() {
            http::write_chunk(out, lines.as_bytes())?;
        } else if bookmarks && last_bookmark.elapsed() >= shared.bookmark_interval {
            let bookmark = json!({"apiVersion": "v1", "kind": kind, "metadata": {"resourceVersion": cursor.to_string()}});
            http::write_chunk(out, event_line("BOOKMARK", &bookmark).as_bytes())?;
            last_bookmark = Instant::now();
        }
    }
    http::end_chunked(out)
}

/// The watch lines for changes after `cursor`, waiting up to `wait` for one.
fn next_events(
    shared: &Shared,
    cursor: u64,
    wait: Duration,
    resource: &str,
    namespace: Option<&str>,
    filter: &Filter,
) -> (String, u64) {
    let mut store = shared.store();
    if store.resource_version() == cursor {
        store = shared.wait_for_change(store, wait);
    }
    let lines = store
        .events_after(cursor, resource, namespace)
        .iter()
        .filter_map(|e| e.seen_through(filter).map(|t| event_line(t, &e.object)))
        .collect();
    (lines, store.resource_version().max(cursor))
}

fn event_line(event_type: &str, object: &Value) -> String {
    let mut line = json!({"type": event_type, "object": object}).to_string();
    line.push('\n');
    line
}
