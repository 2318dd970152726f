#!/usr/bin/env bash
# Run the whole test suite: start the Docker test environment (installing
# what it needs), then every unit and end-to-end test. Docker-backed tests
# fail, never skip, when no daemon is reachable.
set -euo pipefail
cd "$(dirname "$0")/.."

# An assignment, so that a failing set-up stops the script (set -e).
env_exports=$(bash tests/env/up.sh)
eval "$env_exports"
export DOCKER_HOST DECKHAND_TEST_REGISTRY

cargo test --workspace --locked "$@"
