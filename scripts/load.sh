#!/usr/bin/env bash
# Requests per second and latency through the real policy-server, its host
# calls answered by a real kube-apiserver: this policy against the mutating
# floor module, under the same wrk load, alternating round by round (a
# shared machine's speed drifts, so each round's ratio compares neighbours
# in time). RIG is crates/bench's policy-server-rig, which starts etcd,
# kube-apiserver (the Kubernetes programs from KUBE_BIN_DIR or make kube's
# cache) and policy-server; `make load` checks for every program first.
#   scripts/load.sh RIG POLICY_WASM FLOOR_WASM
#   LOAD_ROUNDS (5), LOAD_SECONDS (10), LOAD_CONNECTIONS (8), LOAD_THREADS (2)
set -euo pipefail
rig="$1" policy="$2" floor="$3"
rounds="${LOAD_ROUNDS:-5}" seconds="${LOAD_SECONDS:-10}"
connections="${LOAD_CONNECTIONS:-8}" threads="${LOAD_THREADS:-2}"
for tool in wrk curl policy-server; do
    command -v "$tool" >/dev/null || { echo "$tool not found on PATH: make load needs it" >&2; exit 2; }
done

work="$(mktemp -d)"
fifo="$work/stdin"
mkfifo "$fifo"
cleanup() { exec 3>&- 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
# The rig serves until its standard input closes: the script holds it open.
"$rig" --wasm "$policy" --floor "$floor" --for 3600 <"$fifo" >"$work/rig.out" 2>"$work/rig.err" &
exec 3>"$fifo"
for _ in $(seq 1 600); do
    grep -q '^serving until' "$work/rig.out" 2>/dev/null && break
    if ! kill -0 $! 2>/dev/null; then cat "$work/rig.err" >&2; exit 1; fi
    sleep 0.5
done
grep -q '^serving until' "$work/rig.out" || { echo "the rig did not come up" >&2; cat "$work/rig.err" >&2; exit 1; }
url_of() { sed -n "s#^policy $1: ##p" "$work/rig.out"; }
requests="$(sed -n 's#^sample AdmissionReviews: \(.*\)/hybrid.json, .*#\1#p' "$work/rig.out")"

cat >"$work/post.lua" <<'LUA'
local f = assert(io.open(os.getenv("LOAD_BODY"), "r"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
LUA

# Prints "req/s p50_ms p99_ms" for one wrk run; fails on non-2xx answers.
run_wrk() {
    local out
    out="$(LOAD_BODY="$2" wrk -t"$threads" -c"$connections" -d"${seconds}s" --latency -s "$work/post.lua" "$1")"
    if grep -q 'Non-2xx' <<<"$out"; then echo "non-2xx answers from $1" >&2; echo "$out" >&2; return 1; fi
    local rps p50 p99
    rps="$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")"
    p50="$(awk '$1 == "50%" {print $2}' <<<"$out")"
    p99="$(awk '$1 == "99%" {print $2}' <<<"$out")"
    echo "$rps $(to_ms "$p50") $(to_ms "$p99")"
}
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END { if (NR % 2) print a[(NR+1)/2]; else printf "%.3f\n", (a[NR/2]+a[NR/2+1])/2 }'; }
to_ms() { awk -v v="$1" 'BEGIN { n = v + 0; if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000; printf "%.3f", n }'; }

# Each answer is checked once before the load: the policy's patch carries
# the cost, the floor's its fixed annotations.
for pair in "eks hybrid" "floor hybrid" "ack balance" "floor-balance balance" "floor-balance-pod balance"; do
    set -- $pair
    answer="$(curl -sf -H 'Content-Type: application/json' --data @"$requests/$2.json" "$(url_of "$1")")"
    grep -q '"allowed":true' <<<"$answer" && grep -q '"patch"' <<<"$answer" \
        || { echo "policy $1 did not answer with a patch: $answer" >&2; exit 1; }
done

apiserver="$("${KUBE_BIN_DIR:-.}/kube-apiserver" --version 2>/dev/null | cut -d' ' -f2)"
echo "$(policy-server --version | head -n1), --workers 2, kube-apiserver ${apiserver:-(version unknown)}; wrk -t$threads -c$connections, ${seconds}s per run, $rounds rounds"
printf '%-26s %5s %10s %9s %9s %10s %12s %9s\n' binding round "req/s" "p50 ms" "p99 ms" "floor req/s" "req/s ratio" "p99 ratio"
# Balance bindings have a second floor: the first makes the host calls the
# goal names (node read, pod list); floor-balance-pod also reads the pod
# uncached, as the policy must with the ACK settings (SPEC §4 step 2).
for kind in "hybrid eks floor" "balance ack floor-balance floor-balance-pod"; do
    set -- $kind
    body="$requests/$1.json" name="$1 ($2)"
    floors=("${@:3}")
    declare -A ratios=() p99_ratios=()
    for r in $(seq 1 "$rounds"); do
        # Which goes first alternates too.
        order=("$2" "${floors[@]}")
        (( r % 2 )) || order=("${floors[@]}" "$2")
        declare -A runs=()
        for id in "${order[@]}"; do runs[$id]="$(run_wrk "$(url_of "$id")" "$body")"; done
        read -r prps pp50 pp99 <<<"${runs[$2]}"
        for floor in "${floors[@]}"; do
            read -r frps fp50 fp99 <<<"${runs[$floor]}"
            ratio="$(awk -v p="$prps" -v f="$frps" 'BEGIN { printf "%.3f", p / f }')"
            p99_ratio="$(awk -v p="$pp99" -v f="$fp99" 'BEGIN { printf "%.3f", p / f }')"
            ratios[$floor]+="$ratio "
            p99_ratios[$floor]+="$p99_ratio "
            printf '%-26s %5s %10s %9s %9s %10s %12s %9s\n' "$name vs $floor" "$r" "$prps" "$pp50" "$pp99" "$frps" "$ratio" "$p99_ratio"
            printf '%-26s %5s %10s %9s %9s\n' "  $floor" "$r" "$frps" "$fp50" "$fp99"
        done
    done
    for floor in "${floors[@]}"; do
        # shellcheck disable=SC2086 # the lists are space-separated numbers
        echo "$name vs $floor: req/s ÷ floor's, median of $rounds rounds: $(median ${ratios[$floor]}) (${ratios[$floor]% }); p99 ÷ floor's: $(median ${p99_ratios[$floor]}) (${p99_ratios[$floor]% })"
    done
    unset ratios p99_ratios
done
