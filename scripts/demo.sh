#!/usr/bin/env bash
# The main job, for real, against Docker: install a web server with a
# published port, a volume and a network → upgrade → an upgrade cancelled in
# the middle of its pull → teardown, with live progress, then the journal of
# each job; then the same for a stack of three services from
# examples/stack/compose.yaml. Starts the local Docker daemon and registry
# first.
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
S=shop
clean() {
  docker rm -f "deckhand-$T" "deckhand-$S-db" "deckhand-$S-migrate" "deckhand-$S-web" >/dev/null 2>&1 || true
  docker volume rm "deckhand-$T-V-data" "deckhand-$S-V-data" >/dev/null 2>&1 || true
  docker network rm "$T-net" "deckhand-$S-N-default" >/dev/null 2>&1 || true
}
trap 'kill $proxy 2>/dev/null; clean' EXIT
docker rmi -f "$REG/web:1" "$REG/web:2" "127.0.0.1:5009/deckhand-test/big:2" >/dev/null 2>&1 || true
clean
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
answer() { printf 'http://127.0.0.1:%s/ answers: %s\n' "$PORT" "$(curl -s "http://127.0.0.1:$PORT/" || echo '(nothing)')"; }

say "install $T = web:1, published on 127.0.0.1:$PORT, volume data, network $T-net"
deckhand install "$T" "$REG/web:1" -p "127.0.0.1:$PORT:80" -v data:/srv/data --network "$T-net"
answer

say "upgrade $T to web:2 (pull, create beside, stop old, swap names, start, wait healthy, commit; same volume)"
deckhand upgrade "$T" "$REG/web:2"
answer

say "upgrade $T to big:2 (120 MB over the slow link); Ctrl-C after 4 s cancels it"
timeout -s INT 4 ./target/debug/deckhand --data-dir "$DATA" upgrade "$T" "127.0.0.1:5009/deckhand-test/big:2" || true
say "journal of the cancelled upgrade"
deckhand jobs show "$(last_job)"
echo "container still running web:2, same id as before the cancel:"
docker ps --filter "label=io.deckhand.target=$T" --format '  {{.ID}} {{.Names}} {{.Image}} {{.Status}}'
answer

say "teardown $T (its volume stays: the data; --remove-volumes would remove it)"
deckhand teardown "$T"
answer
docker volume ls --filter "label=io.deckhand.target=$T" --format '  volume {{.Name}}'

say "install the stack $S from examples/stack/compose.yaml (db, a one-shot migrate, web on 127.0.0.1:$PORT)"
WEB_PORT=$PORT deckhand install "$S" -f examples/stack/compose.yaml
answer
say "upgrade the stack with TAG=2: only web is replaced"
WEB_PORT=$PORT TAG=2 deckhand upgrade "$S" -f examples/stack/compose.yaml
answer
deckhand targets show "$S"
say "teardown the stack $S (reverse order: web, migrate, db), with its volume"
deckhand teardown "$S" --remove-volumes
answer
say "all jobs"
deckhand jobs list
say "target history"
deckhand targets show "$T"
echo
echo "journal: $DATA/journal.sqlite"
