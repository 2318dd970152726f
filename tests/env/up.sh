#!/usr/bin/env bash
# Start the test environment: a Docker daemon and a registry on loopback,
# no network needed, and the test images built from busybox-static and
# pushed to the registry. Idempotent: running it again reuses what runs.
#
#   eval "$(tests/env/up.sh)"     # prints `export DOCKER_HOST=…` lines
#
# What it exports:
#   DOCKER_HOST                  the test daemon's socket
#   DECKHAND_TEST_REGISTRY       the registry of the test images (127.0.0.1:5000)
#   DECKHAND_SCHEMATHESIS        the OpenAPI fuzzer (tests/e2e/openapi.rs)
#   DECKHAND_TEST_AUTH_REGISTRY  a second registry that requires basic auth
#                                (127.0.0.1:5001), holding deckhand-test/private:1
#   DECKHAND_TEST_AUTH_CONFIG    a Docker config.json with its credentials
#                                (`auths`, base64 user:password)
#   DECKHAND_TEST_AUTH_USER, DECKHAND_TEST_AUTH_PASSWORD
#                                the same credentials in clear, for tests
#                                that check they appear nowhere
#
# Needs root on a Debian machine (installs docker.io, docker-registry,
# busybox-static and apache2-utils with apt when missing). State lives in
# $DECKHAND_TESTENV (default /tmp/deckhand-testenv).
set -euo pipefail

DK=${DECKHAND_TESTENV:-/tmp/deckhand-testenv}
REGISTRY=127.0.0.1:5000
SOCK=$DK/docker.sock
export DOCKER_HOST=unix://$SOCK
log() { echo "testenv: $*" >&2; }

need_install=()
command -v dockerd >/dev/null || need_install+=(docker.io)
command -v docker-registry >/dev/null || need_install+=(docker-registry)
[ -x /bin/busybox ] && /bin/busybox --list 2>/dev/null | grep -qx sh && file_ok=1 || file_ok=0
dpkg -s busybox-static >/dev/null 2>&1 || need_install+=(busybox-static)
command -v htpasswd >/dev/null || need_install+=(apache2-utils)
command -v docker-compose >/dev/null || need_install+=(docker-compose)
if [ ${#need_install[@]} -gt 0 ]; then
  log "installing ${need_install[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq "${need_install[@]}" >&2
fi

mkdir -p "$DK"

# --- Docker daemon ---------------------------------------------------------
if ! docker version >/dev/null 2>&1; then
  log "starting dockerd ($SOCK)"
  rm -f "$SOCK" "$DK/dockerd.pid"
  nohup dockerd --iptables=false --ip6tables=false --bridge=none --storage-driver=vfs \
    --data-root="$DK/data" --exec-root="$DK/exec" --pidfile="$DK/dockerd.pid" \
    -H "unix://$SOCK" >"$DK/dockerd.log" 2>&1 &
  for _ in $(seq 1 60); do docker version >/dev/null 2>&1 && break; sleep 0.5; done
  docker version >/dev/null 2>&1 || { tail -20 "$DK/dockerd.log" >&2; log "dockerd did not start"; exit 1; }
fi

# --- Registry --------------------------------------------------------------
if ! curl -fsS "http://$REGISTRY/v2/" >/dev/null 2>&1; then
  log "starting registry on $REGISTRY"
  mkdir -p "$DK/registry"
  cat >"$DK/registry.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $DK/registry
  delete:
    enabled: true
http:
  addr: $REGISTRY
YML
  nohup docker-registry serve "$DK/registry.yml" >"$DK/registry.log" 2>&1 &
  for _ in $(seq 1 40); do curl -fsS "http://$REGISTRY/v2/" >/dev/null 2>&1 && break; sleep 0.25; done
  curl -fsS "http://$REGISTRY/v2/" >/dev/null || { tail -20 "$DK/registry.log" >&2; log "registry did not start"; exit 1; }
fi

# --- Registry with basic auth ------------------------------------------------
# For pulls with credentials (tests/e2e/runtime_real_apps.rs). On its own
# port: whatever answers on 5000 is reused as the open registry. The
# password makes the standard base64 of Docker's X-Registry-Auth header
# contain `+` or `/` (checked in engine/src/runtime/registry_auth.rs), which
# the daemon cannot decode unless it is re-encoded URL-safe.
AUTH_REGISTRY=127.0.0.1:5001
AUTH_USER=deckhand
AUTH_PASSWORD='s3cr?t>~pw'
AUTH_DIR=$DK/auth
AUTH_CONFIG=$AUTH_DIR/docker-config/config.json
auth_status() { curl -s -o /dev/null -w '%{http_code}' "http://$AUTH_REGISTRY/v2/" 2>/dev/null || true; }
if [ "$(auth_status)" != 401 ]; then
  log "starting registry with basic auth on $AUTH_REGISTRY"
  mkdir -p "$AUTH_DIR/data"
  # distribution 2.8 reads only bcrypt entries.
  htpasswd -Bbn "$AUTH_USER" "$AUTH_PASSWORD" >"$AUTH_DIR/htpasswd"
  cat >"$AUTH_DIR/registry.yml" <<YML
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $AUTH_DIR/data
http:
  addr: $AUTH_REGISTRY
auth:
  htpasswd:
    realm: deckhand-test
    path: $AUTH_DIR/htpasswd
YML
  nohup docker-registry serve "$AUTH_DIR/registry.yml" >"$AUTH_DIR/registry.log" 2>&1 &
  for _ in $(seq 1 40); do [ "$(auth_status)" = 401 ] && break; sleep 0.25; done
  [ "$(auth_status)" = 401 ] || { tail -20 "$AUTH_DIR/registry.log" >&2; log "auth registry did not start"; exit 1; }
fi
# The credentials as `docker login` would store them without a helper.
mkdir -p "$(dirname "$AUTH_CONFIG")"
printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$AUTH_REGISTRY" \
  "$(printf '%s:%s' "$AUTH_USER" "$AUTH_PASSWORD" | base64 -w0)" >"$AUTH_CONFIG"

# --- Test images -------------------------------------------------------------
has_tag() { curl -fsS "http://$REGISTRY/v2/deckhand-test/$1/tags/list" 2>/dev/null | grep -q "\"$2\""; }

build_dir=$DK/build
if ! has_tag base 1; then
  log "building base image from busybox-static"
  rm -rf "$build_dir/rootfs" && mkdir -p "$build_dir/rootfs/bin" "$build_dir/rootfs/tmp"
  cp /bin/busybox "$build_dir/rootfs/bin/busybox"
  for applet in sh sleep cat echo true false ls; do ln -sf busybox "$build_dir/rootfs/bin/$applet"; done
  tar -C "$build_dir/rootfs" -c . | docker import - "$REGISTRY/deckhand-test/base:1" >/dev/null
  docker push -q "$REGISTRY/deckhand-test/base:1" >/dev/null
fi
docker image inspect "$REGISTRY/deckhand-test/base:1" >/dev/null 2>&1 || docker pull -q "$REGISTRY/deckhand-test/base:1" >/dev/null

# A container that runs until stopped, and stops at once on SIGTERM.
SERVE='["/bin/sh","-c","trap \"exit 0\" TERM; cat /version; sleep 100000 & wait"]'

build() { # name tag dockerfile-body [extra files...]
  local name=$1 tag=$2 body=$3 dir="$build_dir/$1-$2"
  has_tag "$name" "$tag" && return 0
  log "building $name:$tag"
  mkdir -p "$dir"
  printf 'FROM %s/deckhand-test/base:1\n%s\n' "$REGISTRY" "$body" >"$dir/Dockerfile"
  [ -n "${4:-}" ] && cp "${@:4}" "$dir/"
  DOCKER_BUILDKIT=0 docker build -q --network none -t "$REGISTRY/deckhand-test/$name:$tag" "$dir" >/dev/null 2>"$dir/build.log" \
    || { cat "$dir/build.log" >&2; exit 1; }
  docker push -q "$REGISTRY/deckhand-test/$name:$tag" >/dev/null
  docker rmi -f "$REGISTRY/deckhand-test/$name:$tag" >/dev/null
}

echo 1 >"$build_dir/version-1"; echo 2 >"$build_dir/version-2"; echo 3 >"$build_dir/version-3"
build app 1 "COPY version-1 /version
CMD $SERVE" "$build_dir/version-1"
build app 2 "COPY version-2 /version
CMD $SERVE" "$build_dir/version-2"
build app 3 "COPY version-3 /version
CMD $SERVE" "$build_dir/version-3"
build crash 1 'CMD ["/bin/sh","-c","echo crashing; exit 3"]'
# A web server answering its version on port 80, with every busybox applet
# (wget for health checks, chown/stat/md5sum for volume tests). busybox
# httpd as PID 1 ignores SIGTERM: the shell's trap makes a stop prompt.
WEB='["/bin/sh","-c","trap \"exit 0\" TERM; httpd -f -p 80 -h /www & wait"]'
for tag in 1 2; do
  build web $tag "RUN [\"/bin/busybox\",\"--install\",\"-s\",\"/bin\"]
COPY version-$tag /www/index.html
CMD $WEB" "$build_dir/version-$tag"
done
# PID 1 ignores SIGTERM: a stop takes its whole timeout, then SIGKILL.
STUBBORN='["/bin/sh","-c","trap \"\" TERM; cat /version; while true; do sleep 1; done"]'
build stubborn 1 "COPY version-1 /version
CMD $STUBBORN" "$build_dir/version-1"
build stubborn 2 "COPY version-2 /version
CMD $STUBBORN" "$build_dir/version-2"
# Two large images (~120 MB in four random layers each) that share no layer.
for tag in 1 2; do
  if ! has_tag big $tag; then
    for i in 1 2 3 4; do head -c $((30 * 1024 * 1024)) /dev/urandom >"$build_dir/blob$i"; done
    build big $tag "COPY blob1 /data/blob1
COPY blob2 /data/blob2
COPY blob3 /data/blob3
COPY blob4 /data/blob4
COPY version-$tag /version
CMD $SERVE" "$build_dir/blob1" "$build_dir/blob2" "$build_dir/blob3" "$build_dir/blob4" "$build_dir/version-$tag"
    rm -f "$build_dir"/blob?
  fi
done

# Per-test copies (same layers, other names), so that tests running at the
# same time never pull, use or remove each other's image references:
# <alias>:1 = app:1, <alias>:2 = app:2, <alias>:crash = crash:1; the
# STUBBORN_ALIASES the same of stubborn:1 and stubborn:2, the WEB_ALIASES
# of web:1 and web:2.
#
# alias_image NAME TAG SRC: push image SRC again as NAME:TAG.
alias_image() {
  has_tag "$1" "$2" && return 0
  docker pull -q "$REGISTRY/deckhand-test/$3" >/dev/null
  docker tag "$REGISTRY/deckhand-test/$3" "$REGISTRY/deckhand-test/$1:$2"
  docker push -q "$REGISTRY/deckhand-test/$1:$2" >/dev/null
  docker rmi "$REGISTRY/deckhand-test/$1:$2" >/dev/null
}
ALIASES="chaos outage fx bg bg-cancel bg-crash mx-install mx-upgrade mx-teardown cmx-install cmx-upgrade rmx ccrash fin persist cancel conc-a conc-b upgrade rollback health teardown owned cli demo"
for alias in $ALIASES; do
  alias_image "$alias" 1 app:1
  alias_image "$alias" 2 app:2
  alias_image "$alias" crash crash:1
done
# The real-app crash/cancel matrices (tests/e2e/crash.rs): web:1 and web:2,
# which have a shell and every busybox applet.
WEB_ALIASES="mx-vol-install cmx-vol-install mx-vol-upgrade cmx-vol-upgrade mx-snap-upgrade cmx-snap-upgrade mx-vol-teardown cmx-vol-teardown"
for alias in $WEB_ALIASES; do
  alias_image "$alias" 1 web:1
  alias_image "$alias" 2 web:2
done
# The stack matrices (tests/e2e/crash.rs): each service an image of its own,
# so that each is pulled and removed as its own: `db`, a server with a
# health check, <alias>-db = web:1 and web:2; `web`, <alias>-web = app:1 and
# app:2. Not web's for both: two references to one image are one image to
# the engine, which removes only one of them at commit.
STACK_ALIASES="mx-stack-install cmx-stack-install mx-stack-upgrade cmx-stack-upgrade"
for alias in $STACK_ALIASES; do
  alias_image "$alias-db" 1 web:1
  alias_image "$alias-db" 2 web:2
  alias_image "$alias-web" 1 app:1
  alias_image "$alias-web" 2 app:2
done
STUBBORN_ALIASES="interrupted-stop outage-stubborn midcall-install midcall-upgrade midcall-teardown midcall-rollback chaos-stubborn"
for alias in $STUBBORN_ALIASES; do
  alias_image "$alias" 1 stubborn:1
  alias_image "$alias" 2 stubborn:2
done

# The private image, only in the registry with basic auth.
if ! curl -fsS -u "$AUTH_USER:$AUTH_PASSWORD" "http://$AUTH_REGISTRY/v2/deckhand-test/private/tags/list" 2>/dev/null | grep -q '"1"'; then
  log "pushing deckhand-test/private:1 to $AUTH_REGISTRY"
  docker pull -q "$REGISTRY/deckhand-test/app:1" >/dev/null
  docker tag "$REGISTRY/deckhand-test/app:1" "$AUTH_REGISTRY/deckhand-test/private:1"
  DOCKER_CONFIG=$(dirname "$AUTH_CONFIG") docker push -q "$AUTH_REGISTRY/deckhand-test/private:1" >/dev/null
  docker rmi "$AUTH_REGISTRY/deckhand-test/private:1" >/dev/null
fi
for src in app:1 app:2 crash:1 stubborn:1 stubborn:2; do docker rmi "$REGISTRY/deckhand-test/$src" >/dev/null 2>&1 || true; done

# --- schemathesis --------------------------------------------------------------
# The OpenAPI fuzzer tests/e2e/openapi.rs runs against a live server, from
# PyPI into a venv of its own (a pinned version: its command line changes).
SCHEMATHESIS_VERSION=4.32.5
VENV=$DK/venv
SCHEMATHESIS=$VENV/bin/schemathesis
if ! "$SCHEMATHESIS" --version 2>/dev/null | grep -qF "$SCHEMATHESIS_VERSION"; then
  has_venv() { command -v "$1" >/dev/null && "$1" -c 'import venv, ensurepip' >/dev/null 2>&1; }
  PY=python3
  if ! has_venv "$PY"; then
    log "installing python3-venv"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq python3 python3-venv >&2
    has_venv "$PY" || PY=/usr/bin/python3
  fi
  log "installing schemathesis $SCHEMATHESIS_VERSION in $VENV"
  rm -rf "$VENV"
  "$PY" -m venv "$VENV" >&2
  "$VENV/bin/python" -m pip install -q "schemathesis==$SCHEMATHESIS_VERSION" >&2
  "$SCHEMATHESIS" --version >/dev/null || { log "schemathesis did not install"; exit 1; }
fi

echo "export DOCKER_HOST=$DOCKER_HOST"
echo "export DECKHAND_TEST_REGISTRY=$REGISTRY"
echo "export DECKHAND_SCHEMATHESIS=$SCHEMATHESIS"
echo "export DECKHAND_TEST_AUTH_REGISTRY=$AUTH_REGISTRY"
echo "export DECKHAND_TEST_AUTH_CONFIG=$AUTH_CONFIG"
printf 'export DECKHAND_TEST_AUTH_USER=%q\n' "$AUTH_USER"
printf 'export DECKHAND_TEST_AUTH_PASSWORD=%q\n' "$AUTH_PASSWORD"
log "ready: DOCKER_HOST=$DOCKER_HOST registry=$REGISTRY schemathesis=$SCHEMATHESIS"
