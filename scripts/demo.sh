#!/usr/bin/env bash
# Evaluates the bundled sample bindings (hybrid node, EC2 node, not a
# binding) with kwctl when it is installed, else with the project's waPC
# runner. Expects policy.wasm to be built (make demo does it).
set -euo pipefail
cd "$(dirname "$0")/.."

CASES=(hybrid-node-default-settings ec2-node-default-settings pod-create-not-a-binding)

if command -v kwctl >/dev/null 2>&1 && command -v jq >/dev/null 2>&1; then
    make --no-print-directory annotated-policy.wasm >/dev/null
    caps=()
    if kwctl run --help 2>&1 | grep -q -- '--allowed-host-capabilities'; then
        caps=(--allowed-host-capabilities 'kubernetes/get_resource')
    fi
    echo "annotated-policy.wasm evaluated with $(kwctl --version 2>/dev/null | head -n1)"
    echo
    for c in "${CASES[@]}"; do
        dir="e2e-tests/cases/$c"
        out="$(env -u RUST_BACKTRACE kwctl run --allow-context-aware "${caps[@]}" \
            --replay-host-capabilities-interactions "$dir/session.yml" \
            --request-path "$dir/request.json" annotated-policy.wasm 2>/dev/null)"
        echo "$c — $(jq -r .description "$dir/expect.json")"
        echo "  request:  $(jq -r '.request.kind.kind + " " + .request.operation + " " + .request.name' "$dir/request.json")"
        echo "  node:     $(jq -r '.request.object.target.name // "-"' "$dir/request.json")"
        echo "  verdict:  $(jq -r 'if .allowed then "allowed" else "REJECTED: " + (.status.message // "") end' <<<"$out")"
        patch="$(jq -r '.patch // empty' <<<"$out")"
        if [ -n "$patch" ]; then
            echo "  patch:"
            base64 -d <<<"$patch" | jq . | sed 's/^/    /'
        else
            echo "  patch:    none"
        fi
        jq -r '.warnings[]? | "  warning:  " + .' <<<"$out"
        echo
    done
else
    cargo run --quiet --locked -p e2e-tests --bin e2e-runner -- demo --wasm policy.wasm
fi
