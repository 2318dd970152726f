#!/usr/bin/env bash
# The main job, for real, against Docker: install → upgrade → an upgrade
# cancelled in the middle of its pull → teardown, with live progress, then
# the journal of each job. Starts the local Docker daemon and registry first.
set -euo pipefail
cd "$(dirname "$0")/.."

# An assignment, so that a failing set-up stops the script (set -e).
env_exports=$(bash tests/env/up.sh)
eval "$env_exports"
export DOCKER_HOST DECKHAND_SETTLE_MS=${DECKHAND_SETTLE_MS:-500}
cargo build --quiet --locked -p deckhand
DATA=${DECKHAND_DATA_DIR:-$(mktemp -d)/deckhand}
deckhand() { ./target/debug/deckhand --data-dir "$DATA" "$@"; }
REG=${DECKHAND_TEST_REGISTRY:-127.0.0.1:5000}/deckhand-test
T=demo
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
last_job() { deckhand jobs list --target "$T" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])'; }

# A slow link to the registry (2 MB/s), so the last upgrade can be cancelled mid-pull.
python3 tests/env/slow-proxy.py 5009 5000 2000000 & proxy=$!
trap 'kill $proxy 2>/dev/null; docker rm -f deckhand-$T >/dev/null 2>&1 || true' EXIT
docker rmi -f "$REG/demo:1" "$REG/demo:2" "127.0.0.1:5009/deckhand-test/big:2" >/dev/null 2>&1 || true
docker rm -f "deckhand-$T" >/dev/null 2>&1 || true

say "install $T = demo:1"
deckhand install "$T" "$REG/demo:1" --network none

say "upgrade $T to demo:2 (pull, create beside, stop old, swap names, start, wait healthy, commit)"
deckhand upgrade "$T" "$REG/demo:2"

say "upgrade $T to big:2 (120 MB over the slow link); Ctrl-C after 4 s cancels it"
timeout -s INT 4 ./target/debug/deckhand --data-dir "$DATA" upgrade "$T" "127.0.0.1:5009/deckhand-test/big:2" || true
say "journal of the cancelled upgrade"
deckhand jobs show "$(last_job)"
echo "container still running demo:2, same id as before the cancel:"
docker ps --filter "label=io.deckhand.target=$T" --format '  {{.ID}} {{.Names}} {{.Image}} {{.Status}}'

say "teardown $T"
deckhand teardown "$T"

say "all jobs"
deckhand jobs list
say "target history"
deckhand targets show "$T"
echo
echo "journal: $DATA/journal.sqlite"
