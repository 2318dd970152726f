#!/usr/bin/env bash
# All benchmark figures, each beside a baseline measured in the same run
# (`bash scripts/bench.sh 2 4`: figures 2 and 4 only). Starts the Docker test
# environment (and docker-compose) for the figures on a real daemon: 4, 12, 13.
set -euo pipefail
cd "$(dirname "$0")/.."
env_exports=$(bash tests/env/up.sh)
eval "$env_exports"
export DOCKER_HOST DECKHAND_TEST_REGISTRY
cargo bench --locked -p deckhand --bench deckhand -- "$@"
