//! Cost per request of `policy.wasm` inside wasmtime through waPC.
//!
//! The main table runs requests as policy-server does: a fresh instance per
//! request, rehydrated from a module prepared once, on an engine configured
//! like policy-server's; each request is timed in two parts (instantiation
//! with `wapc_init`, then `validate`) and its minor page faults counted.
//! Every policy request alternates with one of the mutating floor (a guest
//! that makes the same host calls and returns a fixed annotated Binding), so
//! that a shared machine's load falls on both and the ratio holds when the
//! absolute numbers move. A second table keeps the warm-instance numbers
//! (one instance called again and again), against the plain floor.
//!
//! Host answers are pre-serialised and served from memory so that the
//! numbers are the guest's, not the responder's.

use anyhow::{Context, Result, bail};
use clap::Parser;
mod memory;

use memory::{TrackedMemory, tracking_engine};
use pod_deletion_cost_policy::objects::{COST_ANNOTATION, RANK_ANNOTATION, ZONE_ANNOTATION};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use wasm_host::latency::Percentiles as Stats;
use wasm_host::rehydrate::{Prepared, policy_server_engine};
use wasm_host::{HostResponder, Policy};

/// Answers host calls from pre-serialised bytes. Requests are matched by
/// meaning once, then by their exact bytes, so that after the warm-up a
/// call costs the host one hash lookup and one copy.
#[derive(Default)]
struct Canned {
    by_meaning: HashMap<String, Vec<u8>>,
    by_bytes: HashMap<Vec<u8>, Vec<u8>>,
}

impl Canned {
    fn with(mut self, request: Value, answer: Value) -> Self {
        self.by_meaning.insert(
            request.to_string(),
            serde_json::to_vec(&answer).unwrap_or_default(),
        );
        self
    }
}

impl HostResponder for Canned {
    fn call(&mut self, _operation: &str, payload: &[u8]) -> Result<Vec<u8>, String> {
        if let Some(answer) = self.by_bytes.get(payload) {
            return Ok(answer.clone());
        }
        let meaning = serde_json::from_slice::<Value>(payload)
            .map(|v| v.to_string())
            .unwrap_or_default();
        let answer =
            self.by_meaning.get(&meaning).cloned().ok_or_else(|| {
                format!("no canned answer for {}", String::from_utf8_lossy(payload))
            })?;
        self.by_bytes.insert(payload.to_vec(), answer.clone());
        Ok(answer)
    }
}

/// The mutating floor's host: it answers by operation alone, since the
/// floor's requests are fixed and only the answers' sizes matter.
#[derive(Clone)]
struct Fixed {
    node: Vec<u8>,
    list: Option<Vec<u8>>,
}

impl Fixed {
    fn node(node: &Value) -> Self {
        Fixed {
            node: serde_json::to_vec(node).unwrap_or_default(),
            list: None,
        }
    }
}

impl HostResponder for Fixed {
    fn call(&mut self, operation: &str, _payload: &[u8]) -> Result<Vec<u8>, String> {
        match (operation, &self.list) {
            ("get_resource", _) => Ok(self.node.clone()),
            ("list_resources_by_namespace", Some(list)) => Ok(list.clone()),
            _ => Err(format!(
                "the mutating floor's host has no answer for {operation}"
            )),
        }
    }
}

fn node_req(name: &str) -> Value {
    json!({"api_version":"v1","kind":"Node","name":name,"namespace":null,"disable_cache":false,"field_masks":["metadata.labels"]})
}

fn fixture(path: &str) -> Result<Value> {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    let text =
        std::fs::read_to_string(&full).with_context(|| format!("reading {}", full.display()))?;
    Ok(serde_json::from_str(&text)?)
}

fn request_of(review: Value) -> Value {
    wasm_host::admission_request(review)
}

struct Scenario {
    name: String,
    payload: Vec<u8>,
    host: Canned,
    /// The same scenario's answers for the mutating floor.
    floor_host: Fixed,
    iterations: usize,
}

fn payload(request: &Value, settings: &Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"request": request, "settings": settings})).unwrap_or_default()
}

/// A pod of a ReplicaSet (`hash` names it), already annotated by the
/// policy with its zone and rank.
fn rs_pod(i: usize, hash: &str, node: &str, zone: &str, rank: usize) -> Value {
    json!({"apiVersion":"v1","kind":"Pod","metadata":{
        "name": format!("web-{hash}-{i:05}"), "namespace":"shop", "uid": format!("uid-{hash}-{i}"),
        "resourceVersion":"1", "creationTimestamp":"2026-11-01T00:00:00Z",
        "labels":{"app":"web","pod-template-hash":hash},
        "annotations":{COST_ANNOTATION: (-(rank as i64)).to_string(),
                       ZONE_ANNOTATION: zone,
                       RANK_ANNOTATION: rank.to_string(),
                       "kubectl.kubernetes.io/restartedAt":"2026-11-01T00:00:00Z"},
        "ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":format!("web-{hash}"),"uid":format!("rs-uid-{hash}"),"controller":true,"blockOwnerDeletion":true}]},
      "spec":{"nodeName":node,"priority":0},"status":{"phase":"Running"}})
}

const CURRENT_HASH: &str = "6d9c7b8f5d";
const PREVIOUS_HASH: &str = "5c8b6a7e4c";

/// `n` pods of ReplicaSet `hash` spread over three zones and 30 nodes.
fn replica_set(n: usize, hash: &str) -> impl Iterator<Item = Value> {
    let zones = ["i", "k", "h"];
    (0..n).map(move |i| rs_pod(i, hash, &format!("node-{}", i % 30), zones[i % 3], i / 3))
}

/// Zone balance with `n` siblings spread over three zones, all already
/// annotated by the policy (the steady state: no sibling node lookups),
/// and `previous` pods of the Deployment's previous ReplicaSet in the same
/// list answer, as during a rollout when siblings are listed by the
/// Deployment's labels.
fn balance(n: usize, previous: usize) -> Result<Scenario> {
    let mut request = request_of(fixture(
        "e2e-tests/cases/ack-zone-k-node-default-settings/request.json",
    )?);
    request["object"]["metadata"]["name"] = json!("web-6d9c7b8f5d-new");
    let node = fixture("e2e-tests/fixtures/nodes/cn-beijing.192.168.2.17.json")?;
    let settings = json!({"rules": [], "zones": {"topologyKey": "available_zone", "balance": true},
                          "placeholders": {"priorityClassNames": ["default-priority-class"]}});
    let me = json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-6d9c7b8f5d-new","namespace":"shop","uid":"uid-new",
        "labels":{"app":"web","pod-template-hash":CURRENT_HASH},
        "ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-6d9c7b8f5d","uid":format!("rs-uid-{CURRENT_HASH}"),"controller":true}]},
        "spec":{"priority":0}});
    let items: Vec<Value> = replica_set(n, CURRENT_HASH)
        .chain(replica_set(previous, PREVIOUS_HASH))
        .collect();
    let list = json!({"apiVersion":"v1","kind":"PodList","metadata":{"resourceVersion":"1"},"items":items});
    let target = request["object"]["target"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let floor_host = Fixed {
        node: serde_json::to_vec(&node)?,
        list: Some(serde_json::to_vec(&list)?),
    };
    let host = Canned::default()
        .with(node_req(&target), node)
        .with(json!({"api_version":"v1","kind":"Pod","name":"web-6d9c7b8f5d-new","namespace":"shop","disable_cache":true,"field_masks":["spec.priority","spec.priorityClassName"]}), me)
        .with(json!({"api_version":"v1","kind":"Pod","namespace":"shop","label_selector":"app=web","field_selector":null,
                     "field_masks":["spec.nodeName","spec.priority","spec.priorityClassName","status.phase"]}), list);
    let name = if previous == 0 {
        format!("6. zone balance, {n} siblings")
    } else {
        format!("7. rollout, {n} siblings + {previous} old")
    };
    Ok(Scenario {
        name,
        payload: payload(&request, &settings),
        host,
        floor_host,
        iterations: (200_000 / (n + previous + 10)).clamp(50, 20_000),
    })
}

fn scenarios(iterations: usize) -> Result<Vec<Scenario>> {
    let hybrid = request_of(fixture(
        "e2e-tests/cases/hybrid-node-default-settings/request.json",
    )?);
    let ec2 = request_of(fixture(
        "e2e-tests/cases/ec2-node-default-settings/request.json",
    )?);
    let pod = request_of(fixture(
        "e2e-tests/cases/pod-create-not-a-binding/request.json",
    )?);
    let hybrid_node = fixture("e2e-tests/fixtures/nodes/mi-0ebe45e33a53e04f2.json")?;
    let ec2_node =
        fixture("e2e-tests/fixtures/nodes/ip-10-42-108-174.us-west-2.compute.internal.json")?;
    let mut invalid = hybrid.clone();
    invalid["object"]["target"] = json!({"kind": "Pod", "name": ""});
    let mut out = vec![
        Scenario {
            name: "1. hybrid node hit (default settings)".into(),
            payload: payload(&hybrid, &Value::Null),
            host: Canned::default().with(node_req("mi-0ebe45e33a53e04f2"), hybrid_node.clone()),
            floor_host: Fixed::node(&hybrid_node),
            iterations,
        },
        Scenario {
            name: "2. no rule matches (EC2 node)".into(),
            payload: payload(&ec2, &Value::Null),
            host: Canned::default().with(
                node_req("ip-10-42-108-174.us-west-2.compute.internal"),
                ec2_node.clone(),
            ),
            floor_host: Fixed::node(&ec2_node),
            iterations,
        },
        Scenario {
            name: "3. not a binding (Pod CREATE)".into(),
            payload: payload(&pod, &Value::Null),
            host: Canned::default(),
            floor_host: Fixed::node(&hybrid_node),
            iterations,
        },
        Scenario {
            name: "4. invalid request (target not a Node)".into(),
            payload: payload(&invalid, &Value::Null),
            host: Canned::default(),
            floor_host: Fixed::node(&hybrid_node),
            iterations,
        },
    ];
    for n in [10, 100, 1_000, 10_000] {
        out.push(balance(n, 0)?);
    }
    out.push(balance(1_000, 1_000)?);
    Ok(out)
}

fn twenty_rules() -> Value {
    let rules: Vec<Value> = (0..20)
        .map(|i| json!({"name": format!("class-{i}"),
            "nodeSelector": {"matchLabels": {"example.com/class": format!("c{i}")},
                             "matchExpressions": [{"key": "node.kubernetes.io/instance-type", "operator": "NotIn", "values": ["t3.micro", "t3.nano"]},
                                                  {"key": "example.com/tier", "operator": "Exists"}]},
            "deletionCost": i * 10}))
        .collect();
    json!({"rules": rules, "defaultDeletionCost": 0,
           "zones": {"topologyKey": "available_zone", "deletionCosts": {"i": 10, "k": 0, "h": -5}, "balance": true},
           "placeholders": {"priorityClassNames": ["default-priority-class"], "podSelector": {"matchLabels": {"app": "ack-place-holder"}}},
           "keepExistingCost": true, "onLookupError": "allow"})
}

/// The summary of a run of timed calls (median = `p50`).
fn stats(samples: Vec<Duration>) -> Stats {
    Stats::of(&samples).unwrap_or_default()
}

/// Times `iterations` calls one by one after a warm-up.
fn measure(mut call: impl FnMut() -> Result<()>, iterations: usize) -> Result<Stats> {
    for _ in 0..(iterations / 10).clamp(5, 2_000) {
        call()?;
    }
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let start = Instant::now();
        call()?;
        samples.push(start.elapsed());
    }
    Ok(stats(samples))
}

/// Like `measure`, for two calls timed alternately.
fn measure_pair(
    mut first: impl FnMut() -> Result<()>,
    mut second: impl FnMut() -> Result<()>,
    iterations: usize,
) -> Result<(Stats, Stats)> {
    for _ in 0..(iterations / 10).clamp(5, 2_000) {
        first()?;
        second()?;
    }
    let (mut a, mut b) = (
        Vec::with_capacity(iterations),
        Vec::with_capacity(iterations),
    );
    for _ in 0..iterations {
        let start = Instant::now();
        first()?;
        a.push(start.elapsed());
        let start = Instant::now();
        second()?;
        b.push(start.elapsed());
    }
    Ok((stats(a), stats(b)))
}

/// One line of the report: a scenario's times and its median as a ratio
/// to the floor's.
fn row(name: &str, calls: usize, st: &Stats, floor_us: f64) {
    println!(
        "{:<42} {:>8} {:>11.2} {:>11.2} {:>11.2} {:>9.2}",
        name,
        calls,
        us(st.p50),
        us(st.p99),
        us(st.mean),
        us(st.p50) / floor_us
    );
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn run_validate(policy: &Policy, payload: &[u8], host: Canned) -> Result<Canned> {
    let (out, host) = policy.validate_raw(payload, host)?;
    check_policy_answer(&out)?;
    Ok(host)
}

/// A wrong canned answer shows up as a warning: refuse to time that.
fn check_policy_answer(out: &[u8]) -> Result<()> {
    if out.windows(10).any(|w| w == b"\"warnings\"")
        && !out.windows(15).any(|w| w == b"\"warnings\":null")
    {
        let text = String::from_utf8_lossy(out);
        if !text.contains("only handles pods/binding") && !text.contains("targets a") {
            bail!("unexpected warning from the policy: {text}");
        }
    }
    Ok(())
}

/// A floor or peer answer must be a patch, or the timing is of an error
/// path.
fn check_mutation(who: &str, out: &[u8]) -> Result<()> {
    if !out.windows(16).any(|w| w == b"\"mutated_object\"")
        || out.windows(21).any(|w| w == b"\"mutated_object\":null")
    {
        bail!("{who} did not mutate: {}", String::from_utf8_lossy(out));
    }
    Ok(())
}

/// The hybrid hit for the peer guest, whose typed settings need a map.
fn peer_hit(iterations: usize) -> Result<Scenario> {
    let hybrid = request_of(fixture(
        "e2e-tests/cases/hybrid-node-default-settings/request.json",
    )?);
    let node = fixture("e2e-tests/fixtures/nodes/mi-0ebe45e33a53e04f2.json")?;
    Ok(Scenario {
        name: "1p. peer: hit done the SDK way (typed)".into(),
        payload: payload(&hybrid, &json!({})),
        host: Canned::default().with(node_req("mi-0ebe45e33a53e04f2"), node.clone()),
        floor_host: Fixed::node(&node),
        iterations,
    })
}

/// One peer call; its answer must be a patch, or the timing is of an
/// error path.
fn run_peer(peer: &Policy, payload: &[u8], host: Canned) -> Result<Canned> {
    let (out, host) = peer.validate_raw(payload, host)?;
    check_mutation("peer", &out)?;
    Ok(host)
}

/// Minor page faults taken by this thread so far.
fn minor_faults() -> u64 {
    // SAFETY: getrusage only writes the struct it is handed; RUSAGE_THREAD
    // keeps other threads' faults out of the count.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut usage);
        usage
    };
    u64::try_from(usage.ru_minflt).unwrap_or(0)
}

/// One request on a fresh instance.
#[derive(Clone, Copy)]
struct Fresh {
    /// Rehydration, instantiation and `wapc_init`.
    instantiate: Duration,
    /// The guest call (host calls included).
    call: Duration,
    /// Everything, the instance's teardown included.
    total: Duration,
    faults: u64,
}

/// A request as policy-server serves it: a fresh instance, one guest call,
/// the instance dropped.
fn fresh<T>(prepared: &Prepared, call: impl FnOnce(&Policy) -> Result<T>) -> Result<(Fresh, T)> {
    let faults = minor_faults();
    let start = Instant::now();
    let policy = prepared.instantiate()?;
    let instantiated = Instant::now();
    let out = call(&policy)?;
    let called = Instant::now();
    drop(policy);
    let total = start.elapsed();
    let faults = minor_faults() - faults;
    Ok((
        Fresh {
            instantiate: instantiated - start,
            call: called - instantiated,
            total,
            faults,
        },
        out,
    ))
}

/// Rounds the alternated samples are split into, for a range of ratios.
const ROUNDS: usize = 5;

struct FreshStats {
    instantiate: Stats,
    call: Stats,
    total: Stats,
    faults: f64,
}

fn fresh_stats(samples: &[Fresh]) -> FreshStats {
    let n = samples.len().max(1) as f64;
    FreshStats {
        instantiate: stats(samples.iter().map(|s| s.instantiate).collect()),
        call: stats(samples.iter().map(|s| s.call).collect()),
        total: stats(samples.iter().map(|s| s.total).collect()),
        faults: samples.iter().map(|s| s.faults as f64).sum::<f64>() / n,
    }
}

/// The policy's and the floor's fresh requests, alternated one by one.
struct FreshPair {
    policy: FreshStats,
    floor: FreshStats,
    /// Median total time over the floor's, per round: (lowest, highest).
    ratio_range: (f64, f64),
}

fn measure_fresh_pair(
    mut policy: impl FnMut() -> Result<Fresh>,
    mut floor: impl FnMut() -> Result<Fresh>,
    iterations: usize,
    cold: bool,
) -> Result<FreshPair> {
    for _ in 0..(iterations / 10).clamp(5, 500) {
        policy()?;
        floor()?;
    }
    let (mut a, mut b) = (
        Vec::with_capacity(iterations),
        Vec::with_capacity(iterations),
    );
    let mut evict = CacheEvictor::new(cold);
    for _ in 0..iterations {
        evict.run();
        a.push(policy()?);
        evict.run();
        b.push(floor()?);
    }
    let per_round = iterations.div_ceil(ROUNDS).max(1);
    let ratios: Vec<f64> = a
        .chunks(per_round)
        .zip(b.chunks(per_round))
        .map(|(pa, pb)| us(fresh_stats(pa).total.p50) / us(fresh_stats(pb).total.p50))
        .collect();
    let low = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let high = ratios.iter().copied().fold(0.0, f64::max);
    Ok(FreshPair {
        policy: fresh_stats(&a),
        floor: fresh_stats(&b),
        ratio_range: (low, high),
    })
}

/// Writes a buffer larger than this machine's caches between requests
/// (outside the timed part), so that each request starts with its code and
/// data out of cache, as a policy-server worker's does between requests
/// that ran other policies and the HTTP and JSON work around them.
struct CacheEvictor(Vec<u8>);

impl CacheEvictor {
    const BYTES: usize = 32 << 20;

    fn new(on: bool) -> Self {
        CacheEvictor(if on { vec![0; Self::BYTES] } else { Vec::new() })
    }

    fn run(&mut self) {
        for line in self.0.chunks_mut(64) {
            if let Some(b) = line.first_mut() {
                *b = b.wrapping_add(1);
            }
        }
        std::hint::black_box(&self.0);
    }
}

fn fresh_header() {
    println!(
        "{:<42} {:>6} {:>9} {:>9} {:>9} {:>9} {:>7} {:>9} {:>7} {:>13}",
        "scenario",
        "calls",
        "inst µs",
        "call µs",
        "total µs",
        "p99 µs",
        "faults",
        "floor µs",
        "faults",
        "× floor"
    );
}

/// One line of the rehydrated table: medians, the policy's p99, minor
/// faults per request, then the floor's, and the total's ratio.
fn fresh_row(name: &str, calls: usize, pair: &FreshPair) {
    let (p, f) = (&pair.policy, &pair.floor);
    println!(
        "{:<42} {:>6} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>7.0} {:>9.1} {:>7.0} {:>4.2} {:>4.2}–{:<4.2}",
        name,
        calls,
        us(p.instantiate.p50),
        us(p.call.p50),
        us(p.total.p50),
        us(p.total.p99),
        p.faults,
        us(f.total.p50),
        f.faults,
        us(p.total.p50) / us(f.total.p50),
        pair.ratio_range.0,
        pair.ratio_range.1,
    );
}

/// Every scenario on fresh instances, alternated with the mutating floor
/// doing the same scenario's host calls.
fn rehydrated_table(wasm: &[u8], mutating_floor: &[u8], peer: &[u8], a: &Args) -> Result<()> {
    let engine = policy_server_engine()?;
    let policy = Prepared::new(&engine, wasm)?;
    let floor = Prepared::new(&engine, mutating_floor)?;
    let peer = Prepared::new(&engine, peer)?;
    println!();
    println!(
        "Fresh instance per request, as policy-server runs it{} (medians; faults: minor page faults per request; × floor: median total over the mutating floor's, timed alternately, and its range over {ROUNDS} rounds)",
        if a.cold_caches {
            ", caches evicted before every request (32 MiB written)"
        } else {
            ""
        }
    );
    fresh_header();
    let mut all = scenarios(a.fresh_iterations)?;
    let peer_scenario = peer_hit(a.fresh_iterations)?;
    all.insert(1, peer_scenario);
    for s in all {
        if !a
            .filter
            .as_ref()
            .is_none_or(|f| s.name.contains(f.as_str()))
        {
            continue;
        }
        let is_peer = s.name.starts_with("1p.");
        let mut host = Some(s.host);
        let mut floor_host = Some(s.floor_host);
        let iterations = s.iterations.min(a.fresh_iterations);
        let pair = measure_fresh_pair(
            || {
                let h = host.take().context("host")?;
                let (sample, h) = fresh(if is_peer { &peer } else { &policy }, |p| {
                    if is_peer {
                        run_peer(p, &s.payload, h)
                    } else {
                        run_validate(p, &s.payload, h)
                    }
                })?;
                host = Some(h);
                Ok(sample)
            },
            || {
                let h = floor_host.take().context("floor host")?;
                let (sample, (out, h)) = fresh(&floor, |p| p.validate_raw(&s.payload, h))?;
                check_mutation("the mutating floor", &out)?;
                floor_host = Some(h);
                Ok(sample)
            },
            iterations,
            a.cold_caches,
        )?;
        fresh_row(&s.name, iterations, &pair);
    }
    if !a
        .filter
        .as_ref()
        .is_none_or(|f| "5. validate_settings".contains(f.as_str()))
    {
        return Ok(());
    }
    let settings = serde_json::to_vec(&twenty_rules())?;
    let settings_call = |p: &Policy| -> Result<()> {
        let out = p.call_raw("validate_settings", &settings)?;
        if !out.starts_with(br#"{"valid":true"#) {
            bail!("settings rejected: {}", String::from_utf8_lossy(&out));
        }
        Ok(())
    };
    let pair = measure_fresh_pair(
        || Ok(fresh(&policy, settings_call)?.0),
        || Ok(fresh(&floor, settings_call)?.0),
        a.fresh_iterations,
        a.cold_caches,
    )?;
    fresh_row("5. validate_settings, 20 rules", a.fresh_iterations, &pair);
    Ok(())
}

/// Cost per request of policy.wasm in wasmtime through waPC, on fresh
/// instances as policy-server runs it and on a warm one.
#[derive(Parser)]
#[command(name = "bench")]
struct Args {
    /// The module measured.
    #[arg(long, default_value = "policy.wasm")]
    wasm: PathBuf,
    /// The warm-instance floor: one node lookup, a fixed accept.
    #[arg(long, default_value = "floor.wasm")]
    floor: PathBuf,
    /// The fresh-instance floor: the same host calls, a fixed annotated Binding.
    #[arg(long, default_value = "mutating-floor.wasm")]
    mutating_floor: PathBuf,
    /// A hybrid hit written the SDK's way.
    #[arg(long, default_value = "peer.wasm")]
    peer: PathBuf,
    /// Calls per scenario on a warm instance (with `--only`: calls counted).
    #[arg(long, default_value_t = 20_000)]
    iterations: usize,
    /// Requests per scenario on fresh instances (at most; large sibling
    /// lists run fewer).
    #[arg(long, default_value_t = 5_000)]
    fresh_iterations: usize,
    /// With `--only`: count requests on fresh instances, as policy-server
    /// runs them, instead of calls on one warm instance.
    #[arg(long, requires = "only")]
    rehydrated: bool,
    /// Only the fresh-instance rows whose name contains this, then stop.
    #[arg(long)]
    filter: Option<String>,
    /// Evict the caches before every fresh-instance request.
    #[arg(long)]
    cold_caches: bool,
    /// Hybrid hits on one instance, after which its linear memory must be
    /// what it was after the first 1,000.
    #[arg(long, default_value_t = 100_000)]
    memory_calls: usize,
    /// Run only the scenario whose name contains this, untimed: for
    /// instruction counts under callgrind (`make profile`).
    #[arg(long)]
    only: Option<String>,
    /// With `--only`: run the policy compiled for this machine instead of
    /// `policy.wasm`, so that callgrind names its functions and lines.
    #[arg(long, requires = "only", conflicts_with = "rehydrated")]
    native: bool,
    /// Time the ways of reading the 1,000-sibling list answer, natively.
    #[arg(long)]
    readers: bool,
}

/// The calls `make profile` counts (callgrind's `--toggle-collect`): the
/// scenario's host answers are in memory, so nearly all of it is the guest.
#[inline(never)]
fn profiled_calls(
    policy: &Policy,
    payload: &[u8],
    mut host: Canned,
    calls: usize,
    peer: bool,
) -> Result<()> {
    for _ in 0..calls {
        host = one_call(policy, payload, host, peer)?;
    }
    Ok(())
}

/// The requests `make profile REHYDRATED=1` counts: each on a fresh
/// instance, as policy-server serves it, teardown included.
#[inline(never)]
fn profiled_rehydrated_calls(
    prepared: &Prepared,
    payload: &[u8],
    mut host: Canned,
    calls: usize,
    peer: bool,
) -> Result<()> {
    for _ in 0..calls {
        let policy = prepared.instantiate()?;
        host = one_call(&policy, payload, host, peer)?;
    }
    Ok(())
}

fn one_call(policy: &Policy, payload: &[u8], host: Canned, peer: bool) -> Result<Canned> {
    if peer {
        run_peer(policy, payload, host)
    } else {
        run_validate(policy, payload, host)
    }
}

impl pod_deletion_cost_policy::cluster::Host for Canned {
    fn kubernetes(&mut self, operation: &str, payload: &[u8]) -> Result<Vec<u8>, String> {
        HostResponder::call(self, operation, payload)
    }
}

/// The native counterpart of `profiled_calls`: same payload and answers,
/// the policy's own code without wasmtime and waPC around it.
#[inline(never)]
fn profiled_native_calls(payload: &[u8], host: &mut Canned, calls: usize) {
    for _ in 0..calls {
        let response = pod_deletion_cost_policy::evaluate::evaluate(payload, host);
        std::hint::black_box(response);
    }
}

fn profile(a: &Args, wasm: &[u8], only: &str) -> Result<()> {
    // `--only peer --wasm peer.wasm` counts the peer guest's hybrid hit.
    let peer = only == "peer";
    let s = if peer {
        peer_hit(a.iterations)?
    } else {
        scenarios(a.iterations)?
            .into_iter()
            .find(|s| s.name.contains(only))
            .with_context(|| format!("no scenario named like {only:?}"))?
    };
    if a.native {
        let mut host = s.host;
        profiled_native_calls(&s.payload, &mut host, 1);
        profiled_native_calls(&s.payload, &mut host, a.iterations);
        println!("{} native calls of {}", a.iterations, s.name);
        return Ok(());
    }
    if a.rehydrated {
        let engine = policy_server_engine()?;
        let prepared = Prepared::new(&engine, wasm)?;
        let host = one_call(&prepared.instantiate()?, &s.payload, s.host, peer)?;
        profiled_rehydrated_calls(&prepared, &s.payload, host, a.iterations, peer)?;
        println!("{} calls on fresh instances of {}", a.iterations, s.name);
        return Ok(());
    }
    let policy = Policy::from_bytes(wasm)?;
    // One call first, so the counted ones run warm.
    let host = one_call(&policy, &s.payload, s.host, peer)?;
    profiled_calls(&policy, &s.payload, host, a.iterations, peer)?;
    println!("{} calls of {}", a.iterations, s.name);
    Ok(())
}

/// A PodList read by the serde views the policy's reader is tested
/// against (`tests/properties.rs`).
#[derive(serde::Deserialize)]
struct PodListView<'a> {
    #[serde(borrow)]
    items: Vec<pod_deletion_cost_policy::objects::Pod<'a>>,
}

/// The 1,000-sibling list answer read three ways, compiled for this
/// machine: the policy's reader (what `validate` does with it), the serde
/// views of the same fields, and serde_json walking the whole answer
/// without keeping anything (what any validating reader must at least do).
/// Native code is faster than the same code in wasmtime; the ratios are
/// what these numbers are for.
fn readers(iterations: usize) -> Result<()> {
    let s = balance(1_000, 0)?;
    let list = s
        .floor_host
        .list
        .context("the scenario has no list answer")?;
    let text = std::str::from_utf8(&list)?;
    let ours = measure(
        || {
            let mut kept = 0;
            pod_deletion_cost_policy::scan::each_pod(text, false, |p| {
                kept += usize::from(p.spec.node_name.is_some())
            })
            .map_err(anyhow::Error::msg)?;
            std::hint::black_box(kept);
            Ok(())
        },
        iterations,
    )?;
    let views = measure(
        || {
            let list: PodListView = serde_json::from_str(text)?;
            std::hint::black_box(list.items.len());
            Ok(())
        },
        iterations,
    )?;
    let walk = measure(
        || {
            let _: serde::de::IgnoredAny = serde_json::from_str(text)?;
            Ok(())
        },
        iterations,
    )?;
    println!(
        "{} (the 1,000-sibling list answer, {} bytes), natively, medians of {iterations}:",
        s.name,
        list.len()
    );
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    for (name, st) in [
        ("the policy's reader (scan::each_pod)", &ours),
        ("serde views of the same fields", &views),
        ("serde_json walking it, keeping nothing", &walk),
    ] {
        println!(
            "  {name:<42} {:>8.0} µs  {:.2}× the policy's reader",
            us(st.p50),
            us(st.p50) / us(ours.p50)
        );
    }
    Ok(())
}

fn main() -> Result<()> {
    let a = Args::parse();
    if a.readers {
        return readers(a.iterations.min(1_000));
    }
    let wasm = std::fs::read(&a.wasm)
        .with_context(|| format!("reading {} (run `make policy.wasm`)", a.wasm.display()))?;
    if let Some(only) = &a.only {
        return profile(&a, &wasm, only);
    }
    let floor_wasm = std::fs::read(&a.floor)
        .with_context(|| format!("reading {} (run `make floor.wasm`)", a.floor.display()))?;
    let peer_wasm = std::fs::read(&a.peer)
        .with_context(|| format!("reading {} (run `make peer.wasm`)", a.peer.display()))?;
    let mutating_floor_wasm = std::fs::read(&a.mutating_floor).with_context(|| {
        format!(
            "reading {} (run `make mutating-floor.wasm`)",
            a.mutating_floor.display()
        )
    })?;

    println!(
        "machine: {} cores, {}",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        cpu_model()
    );
    println!(
        "policy.wasm: {} bytes; mutating-floor.wasm: {} bytes; floor.wasm: {} bytes; peer.wasm: {} bytes",
        wasm.len(),
        mutating_floor_wasm.len(),
        floor_wasm.len(),
        peer_wasm.len()
    );
    rehydrated_table(&wasm, &mutating_floor_wasm, &peer_wasm, &a)?;
    if a.filter.is_some() {
        return Ok(());
    }

    // Compilation: policy-server pays it once per module, at start.
    let mut loads = Vec::new();
    for _ in 0..5 {
        let start = Instant::now();
        let p = Policy::from_bytes(&wasm)?;
        loads.push(start.elapsed());
        drop(p);
    }
    let load = stats(loads);
    println!(
        "compile + instantiate policy.wasm: median {:.1} ms",
        load.p50.as_secs_f64() * 1e3
    );

    let policy = Policy::from_bytes(&wasm)?;
    let floor = Policy::from_bytes(&floor_wasm)?;

    let hybrid = request_of(fixture(
        "e2e-tests/cases/hybrid-node-default-settings/request.json",
    )?);
    let hybrid_node = fixture("e2e-tests/fixtures/nodes/mi-0ebe45e33a53e04f2.json")?;
    let floor_payload = payload(&hybrid, &Value::Null);
    let mut floor_host =
        Some(Canned::default().with(node_req("mi-0ebe45e33a53e04f2"), hybrid_node));
    let floor_stats = measure(
        || {
            let h = floor_host.take().context("host")?;
            let (_, h) = floor.validate_raw(&floor_payload, h)?;
            floor_host = Some(h);
            Ok(())
        },
        a.iterations,
    )?;

    println!();
    println!(
        "One warm instance called again and again (not what policy-server does; × floor: against the plain floor)"
    );
    println!(
        "{:<42} {:>8} {:>11} {:>11} {:>11} {:>9}",
        "scenario", "calls", "median µs", "p99 µs", "mean µs", "× floor"
    );
    let floor_us = us(floor_stats.p50);
    row(
        "0. floor (fixed accept after a node call)",
        a.iterations,
        &floor_stats,
        floor_us,
    );
    // The peer does the hybrid hit's job the SDK's way: typed request,
    // Binding and Node. It is timed alternately with the policy's hybrid
    // hit, call by call, so that both see the same moments of a shared
    // machine's load and the ratio holds when the absolute numbers move.
    let peer = Policy::from_bytes(&peer_wasm)?;
    let peer_scenario = peer_hit(a.iterations)?;
    let hit = scenarios(a.iterations)?
        .into_iter()
        .find(|s| s.name.starts_with("1."))
        .context("scenario 1")?;
    let (mut peer_host, mut hit_host) = (Some(peer_scenario.host), Some(hit.host));
    let (hit_paired, peer_stats) = measure_pair(
        || {
            let h = hit_host.take().context("host")?;
            hit_host = Some(run_validate(&policy, &hit.payload, h)?);
            Ok(())
        },
        || {
            let h = peer_host.take().context("host")?;
            peer_host = Some(run_peer(&peer, &peer_scenario.payload, h)?);
            Ok(())
        },
        a.iterations,
    )?;
    let peer_row = || {
        row(
            "1p. peer: hit done the SDK way (typed)",
            a.iterations,
            &peer_stats,
            floor_us,
        );
        println!(
            "{:<42} policy's hybrid hit at {:.2}× the peer's median (timed alternately: {:.2} µs against {:.2} µs)",
            "",
            us(hit_paired.p50) / us(peer_stats.p50),
            us(hit_paired.p50),
            us(peer_stats.p50)
        );
    };

    for s in scenarios(a.iterations)? {
        let mut host = Some(s.host);
        let st = measure(
            || {
                let h = host.take().context("host")?;
                host = Some(run_validate(&policy, &s.payload, h)?);
                Ok(())
            },
            s.iterations,
        )?;
        row(&s.name, s.iterations, &st, floor_us);
        if s.name.starts_with("1.") {
            peer_row();
        }
    }
    let settings = serde_json::to_vec(&twenty_rules())?;
    let st = measure(
        || {
            let out = policy.call_raw("validate_settings", &settings)?;
            if !out.starts_with(br#"{"valid":true"#) {
                bail!(
                    "20-rule settings rejected: {}",
                    String::from_utf8_lossy(&out)
                );
            }
            Ok(())
        },
        a.iterations,
    )?;
    row(
        "5. validate_settings, 20 rules",
        a.iterations,
        &st,
        floor_us,
    );

    // Linear memory, on an engine whose memories report their size.
    let tracked = TrackedMemory::default();
    let engine = tracking_engine(&tracked)?;
    let mem_policy = Policy::from_bytes_with_engine(&wasm, engine)?;
    let s = scenarios(1)?.into_iter().next().context("scenario 1")?;
    let mut host = Some(s.host);
    let mut after_first_1000 = 0;
    for i in 0..a.memory_calls {
        let h = host.take().context("host")?;
        host = Some(run_validate(&mem_policy, &s.payload, h)?);
        if i + 1 == 1_000.min(a.memory_calls) {
            after_first_1000 = tracked.bytes();
        }
    }
    let after_all = tracked.bytes();
    let b1000 = balance(1_000, 0)?;
    let mut host = Some(b1000.host);
    for _ in 0..200 {
        let h = host.take().context("host")?;
        host = Some(run_validate(&mem_policy, &b1000.payload, h)?);
    }
    println!();
    println!(
        "linear memory: {} KiB after 1,000 calls of scenario 1, {} KiB after {} calls ({}), {} KiB after 200 more with 1,000 siblings",
        after_first_1000 / 1024,
        after_all / 1024,
        a.memory_calls,
        if after_all == after_first_1000 {
            "no growth"
        } else {
            "GREW"
        },
        tracked.bytes() / 1024
    );
    if after_all != after_first_1000 {
        bail!("linear memory grew across repeated calls");
    }
    Ok(())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn arguments_are_consistent() {
        Args::command().debug_assert();
    }
}
