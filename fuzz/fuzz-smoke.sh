#!/usr/bin/env bash
# Short fuzzing run of every target, for CI and `make fuzz-smoke`.
#   FUZZ_SECONDS    seconds per target (default 60)
#   FUZZ_SANITIZER  cargo-fuzz sanitizer (default address)
# Saved regressions are replayed first; exits non-zero on any crash, and
# libFuzzer leaves the crashing input in fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"

seconds="${FUZZ_SECONDS:-60}"
sanitizer="${FUZZ_SANITIZER:-address}"
# policy_config needs `--features policy-config`, which builds wasmtime
# with the sanitizer (long); its inputs are replayed by `make test`.
targets=(settings evaluate snapshot)

if ! rustup toolchain list | grep -q '^nightly'; then
    rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

status=0
for target in "${targets[@]}"; do
    mkdir -p "corpus/$target"
    echo "== $target: regressions"
    if ! cargo +nightly fuzz run --fuzz-dir . -s "$sanitizer" "$target" \
        "regressions/$target" -- -runs=0; then
        status=1
        continue
    fi
    echo "== $target: ${seconds}s"
    if ! cargo +nightly fuzz run --fuzz-dir . -s "$sanitizer" "$target" \
        "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -dict=dicts/policy.dict -print_final_stats=1; then
        status=1
    fi
done
exit "$status"
