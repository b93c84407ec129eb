#!/usr/bin/env bats
# The end-to-end case table (e2e-tests/cases/*) under the real kwctl, with
# the same expectations the waPC runner checks (cases/<case>/expect.json).
# kwctl exits 0 even when an evaluation failed inside, so every check reads
# the JSON it prints, never its exit code alone.

setup() {
    if ! command -v kwctl >/dev/null 2>&1; then
        skip "kwctl not found on PATH: install kwctl to run the case table under the real Kubewarden runtime"
    fi
    if ! command -v jq >/dev/null 2>&1; then
        skip "jq not found on PATH: it is needed to read kwctl's output"
    fi
    ROOT="$(cd "$BATS_TEST_DIRNAME/.." && pwd)"
    POLICY="${POLICY:-$ROOT/annotated-policy.wasm}"
    if [ ! -f "$POLICY" ]; then
        echo "$POLICY not found: run 'make annotated-policy.wasm' first" >&2
        return 1
    fi
    CAPS=()
    # kwctl 1.35+ limits host capabilities to those named on the command
    # line: several values after ONE flag (repeating the flag is an error).
    if kwctl run --help 2>&1 | grep -q -- '--allowed-host-capabilities'; then
        CAPS=(--allowed-host-capabilities 'kubernetes/get_resource' 'kubernetes/list_resources_by_namespace')
    fi
}

# Runs one case folder; prints what differs and fails on any difference.
check_case() {
    local dir="$1" expect="$1/expect.json" out err rc problems=()
    local settings=()
    [ -f "$dir/settings.yml" ] && settings=(--settings-path "$dir/settings.yml")
    out="$(mktemp)"
    err="$(mktemp)"
    set +e
    env -u RUST_BACKTRACE kwctl run --allow-context-aware "${CAPS[@]}" \
        --replay-host-capabilities-interactions "$dir/session.yml" \
        --request-path "$dir/request.json" "${settings[@]}" "$POLICY" >"$out" 2>"$err"
    rc=$?
    set -e

    # `//` would turn an explicit false into the default: test with has().
    if [ "$(jq -r 'if has("settingsValid") then .settingsValid else true end' "$expect")" = "false" ]; then
        local msg quoted
        msg="$(jq -r '.settingsMessage // ""' "$expect")"
        # kwctl prints the policy's message with Rust's {:?}: quoted, with
        # inner quotes escaped, as JSON would.
        quoted="$(jq '.settingsMessage // ""' "$expect")"
        if ! grep -qF -- "$quoted" "$out" "$err" && ! grep -qF -- "$msg" "$out" "$err"; then
            problems+=("settings refusal does not mention: $msg (kwctl said: $(cat "$err" "$out"))")
        fi
        if [ "$rc" -eq 0 ] && jq -e '.allowed' "$out" >/dev/null 2>&1; then
            problems+=("kwctl evaluated the request although the settings are invalid")
        fi
    elif ! [ -s "$out" ] || ! jq -e 'type == "object"' "$out" >/dev/null 2>&1; then
        problems+=("kwctl printed no JSON (exit $rc): $(cat "$err")")
    else
        local want got
        want="$(jq -r 'if has("allowed") then .allowed|tostring else "" end' "$expect")"
        got="$(jq -r '.allowed|tostring' "$out")"
        [ -z "$want" ] || [ "$want" = "$got" ] || problems+=("allowed: expected $want, got $got ($(jq -c '.status' "$out"))")

        want="$(jq -cS '.patch // null' "$expect")"
        got="$(jq -r '.patch // empty' "$out" | base64 -d 2>/dev/null | jq -cS . 2>/dev/null)"
        [ -n "$got" ] || got=null
        [ "$want" = "$got" ] || problems+=("patch: expected $want, got $got")

        while IFS= read -r w; do
            [ -n "$w" ] || continue
            jq -e --arg w "$w" '[.warnings[]? | contains($w)] | any' "$out" >/dev/null \
                || problems+=("no warning contains: $w (warnings: $(jq -c '.warnings' "$out"))")
        done < <(jq -r '.warnings[]?' "$expect")
        if [ "$(jq -r '.noWarnings // false' "$expect")" = "true" ]; then
            jq -e '(.warnings // []) | length == 0' "$out" >/dev/null \
                || problems+=("expected no warnings, got $(jq -c '.warnings' "$out")")
        fi
        while IFS= read -r m; do
            [ -n "$m" ] || continue
            jq -e --arg m "$m" '(.status.message // "") | contains($m)' "$out" >/dev/null \
                || problems+=("message does not contain: $m (got $(jq -c '.status.message' "$out"))")
        done < <(jq -r '.message[]?' "$expect")
        while IFS=$'\t' read -r k v; do
            [ -n "$k" ] || continue
            jq -e --arg k "$k" --arg v "$v" '.auditAnnotations[$k] == $v' "$out" >/dev/null \
                || problems+=("audit annotation $k: expected $v, got $(jq -c --arg k "$k" '.auditAnnotations[$k]' "$out")")
        done < <(jq -r '(.auditAnnotations // {}) | to_entries[] | "\(.key)\t\(.value)"' "$expect")
    fi
    rm -f "$out" "$err"
    if [ "${#problems[@]}" -gt 0 ]; then
        printf 'FAIL %s\n' "$(basename "$dir")"
        printf '       %s\n' "${problems[@]}"
        return 1
    fi
    printf 'ok   %s\n' "$(basename "$dir")"
}

# Runs every case folder under $1; fails when any fails.
run_cases() {
    local failed=0 count=0 dir
    for dir in "$1"/*/; do
        [ -d "$dir" ] || continue
        count=$((count + 1))
        check_case "${dir%/}" || failed=$((failed + 1))
    done
    if [ "$count" -eq 0 ]; then
        echo "no case folder under $1" >&2
        return 1
    fi
    [ "$failed" -eq 0 ]
}

# CASES_DIR runs another table, for instance one
# `kubectl deletion-cost simulate --export-cases` wrote.
@test "every case folder agrees with its expect.json under kwctl" {
    run_cases "${CASES_DIR:-$ROOT/e2e-tests/cases}"
}

@test "the simulator's predictions for the bundled snapshots hold under kwctl" {
    local command="${DELETION_COST:-$ROOT/target/debug/kubectl-deletion_cost}" tmp snap
    if [ ! -x "$command" ]; then
        echo "$command not found: cargo build -p kubectl-deletion-cost" >&2
        return 1
    fi
    tmp="$(mktemp -d)"
    snap="$ROOT/crates/kubectl-deletion-cost/snapshots"
    "$command" simulate --policy "$POLICY" --now 2026-11-22T00:00:00Z --export-cases "$tmp/eks" \
        --settings "$ROOT/examples/eks-hybrid-bursting.yaml" "$snap/eks-hybrid/cluster.json" >/dev/null
    "$command" simulate --policy "$POLICY" --now 2026-11-22T00:00:00Z --export-cases "$tmp/ack" \
        --settings "$ROOT/examples/ack-zones-placeholders.yaml" \
        "$snap/ack-zones/nodes.json" "$snap/ack-zones/pods.json" >/dev/null
    local status=0
    run_cases "$tmp/eks" || status=1
    run_cases "$tmp/ack" || status=1
    rm -rf "$tmp"
    [ "$status" -eq 0 ]
}

@test "a session with a wrong field mask makes kwctl fail the evaluation" {
    local tmp
    tmp="$(mktemp -d)"
    cp -r "$ROOT/e2e-tests/cases/hybrid-node-default-settings/." "$tmp/"
    sed -i 's/- metadata.labels/- metadata/' "$tmp/session.yml"
    run check_case "$tmp"
    rm -rf "$tmp"
    [ "$status" -ne 0 ]
}
