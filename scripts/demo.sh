#!/usr/bin/env bash
# The main job, for real: start the local Docker daemon and registry, build
# Deckhand, and run jobs against Docker, showing progress and the journal.
set -euo pipefail
cd "$(dirname "$0")/.."

# An assignment, so that a failing set-up stops the script (set -e).
env_exports=$(bash tests/env/up.sh)
eval "$env_exports"
export DOCKER_HOST
cargo build --quiet --locked -p deckhand
DATA=${DECKHAND_DATA_DIR:-$(mktemp -d)/deckhand}
deckhand() { ./target/debug/deckhand --data-dir "$DATA" "$@"; }
REG=${DECKHAND_TEST_REGISTRY:-127.0.0.1:5000}/deckhand-test
TARGET=demo-$$
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "install $TARGET from $REG/big:1 (120 MB, five layers)"
docker rmi -f "$REG/big:1" >/dev/null 2>&1 || true
deckhand install "$TARGET" "$REG/big:1" --network none

say "a failing install rolls back: $REG/crash:1 exits at once"
deckhand install "$TARGET-crash" "$REG/crash:1" --network none || true

say "jobs"
deckhand jobs list
say "the install's journal"
deckhand jobs show "$(deckhand jobs list --target "$TARGET" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')"
say "targets"
deckhand targets show "$TARGET"

docker rm -f "deckhand-$TARGET" >/dev/null
echo
echo "journal: $DATA/journal.sqlite"
