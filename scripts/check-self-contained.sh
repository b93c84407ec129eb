#!/usr/bin/env bash
# Fails when a tracked file refers to a folder beside the repository: a
# user's clone has nothing next to it. Only CI's own script (.ci/) may use
# tools it finds there.
set -euo pipefail
cd "$(dirname "$0")/.."
# Assembled so that this script does not match itself.
beside='\.\./'"shared"
if hits="$(git grep -n -e "$beside" -- . ':!.ci')"; then
    echo "tracked files refer to a folder outside the repository:" >&2
    echo "$hits" >&2
    exit 1
fi
echo "self-contained: no tracked file outside .ci/ reads beside the repository"
