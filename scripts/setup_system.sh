#!/usr/bin/env bash
# Installs and starts what a fresh Debian 12 machine lacks for LearningChain:
# the Docker engine, PostgreSQL (for the storage tests), debootstrap (for
# the offline base image) and Chromium (the dashboard's browser test drives
# /usr/bin/chromium through Playwright; nothing is downloaded at test time)
# and faketime (clock offsets of the emulated hosts in tests/hosts), and gVisor
# (runsc, the job sandbox's runtime, registered with the engine).
# Idempotent: every step checks before it acts.
set -euo pipefail

need_pkgs=()
command -v dockerd >/dev/null 2>&1 || need_pkgs+=(docker.io)
command -v debootstrap >/dev/null 2>&1 || need_pkgs+=(debootstrap)
# the job launcher (sandbox/launch.c) is built static [JOB-SECCOMP.5]; libseccomp compiles
# the profile to BPF (apt itself depends on it)
command -v gcc >/dev/null 2>&1 || need_pkgs+=(gcc)
[ -e /usr/lib/x86_64-linux-gnu/libc.a ] || [ -e /usr/lib/aarch64-linux-gnu/libc.a ] || need_pkgs+=(libc6-dev)
ldconfig -p | grep -q 'libseccomp.so.2 ' || need_pkgs+=(libseccomp2)
[ -x /usr/lib/postgresql/15/bin/postgres ] || need_pkgs+=(postgresql)
[ -x /usr/bin/chromium ] || need_pkgs+=(chromium)
# libfaketime: tests/hosts gives an emulated host's node process a clock offset
[ -e /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ] || need_pkgs+=(faketime)
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
if [ ${#need_pkgs[@]} -gt 0 ]; then
  echo "setup: installing ${need_pkgs[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
fi

# gVisor: job containers run under runsc wherever it is installed [JOB-RUNTIME.1], the
# exact release sandbox/runtime.py names [JOB-RUNTIME.4], from bookworm-backports (Debian
# 12's own runsc lacks the systrap platform). Adding the suite upgrades nothing else:
# backports packages are only installed when asked for by name and version.
runsc_version=$(cd "$(dirname "$0")/.." && python3 -m sandbox.runtime package-version)
if [ "$(dpkg-query -W -f='${Version}' runsc 2>/dev/null || true)" != "$runsc_version" ]; then
  echo "setup: installing gVisor runsc $runsc_version (bookworm-backports)"
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    printf '%s\n' 'Types: deb' 'URIs: http://deb.debian.org/debian' \
      'Suites: bookworm-backports' 'Components: main' \
      'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' \
      | $SUDO tee /etc/apt/sources.list.d/learningchain-bookworm-backports.sources >/dev/null
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --allow-downgrades \
      "runsc=$runsc_version" >/dev/null \
    || { echo "setup: could not install runsc=$runsc_version from bookworm-backports (if the" \
              "archive moved on, update RUNSC_PACKAGE_VERSION in sandbox/runtime.py)"; exit 1; }
fi

# Daemons started here outlive this script: they must not inherit its open file
# descriptors (a caller's `flock LOCK make test` would otherwise have dockerd and
# PostgreSQL hold LOCK forever, and every later `flock LOCK ...` would wait for ever).
close_inherited_fds() {
  local fd
  for fd in /proc/$BASHPID/fd/*; do
    fd=${fd##*/}
    if [ "$fd" -gt 2 ] 2>/dev/null; then eval "exec $fd>&-" 2>/dev/null || true; fi
  done
}

# Docker's checkpoints (an experimental feature of this engine) are what a node that asks for
# warm starts under gVisor restores job containers from (LC_WARM_START=1, [JOB-WARM.6]). The
# engine reads the setting only when it starts, so it is written before the start below; an
# engine already running keeps its own until it is restarted (warm starts stay off there).
if [ -z "${DOCKER_HOST:-}" ]; then
  python3 - <<'PY'
import json, pathlib
path = pathlib.Path("/etc/docker/daemon.json")
current = json.loads(path.read_text() or "{}") if path.exists() else {}
if current.get("experimental") is not True:
    current["experimental"] = True
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
PY
  if docker info >/dev/null 2>&1 && [ "$(docker info --format '{{.ExperimentalBuild}}')" != true ]; then
    echo "setup: the running Docker engine has no checkpoints; restart dockerd to allow warm starts"
  fi
fi

# Docker engine: start dockerd in the background when nothing answers.
if ! docker info >/dev/null 2>&1; then
  if [ -z "${DOCKER_HOST:-}" ]; then
    echo "setup: starting dockerd"
    mkdir -p /var/log
    ( close_inherited_fds; exec nohup dockerd >/var/log/learningchain-dockerd.log 2>&1 ) &
    for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
  fi
  docker info >/dev/null 2>&1 || { echo "setup: Docker engine did not start (see /var/log/learningchain-dockerd.log)"; exit 1; }
fi

# gVisor's runsc registered with the host engine [JOB-RUNTIME.4]: merged into
# /etc/docker/daemon.json (other keys kept), then SIGHUP (dockerd reloads `runtimes`
# without a restart, so running containers are untouched); only when it changed.
if [ -x /usr/bin/runsc ] && [ -z "${DOCKER_HOST:-}" ]; then
  runtime_state=$(cd "$(dirname "$0")/.." && python3 -m sandbox.runtime register /etc/docker/daemon.json)
  if [ "$runtime_state" = changed ]; then
    echo "setup: registered runsc (gVisor) in /etc/docker/daemon.json; reloading dockerd"
    kill -HUP "$(cat /var/run/docker.pid)"
  fi
  for _ in $(seq 1 40); do
    docker info --format '{{json .Runtimes}}' | grep -q '"runsc"' && break; sleep 0.25
  done
  docker info --format '{{json .Runtimes}}' | grep -q '"runsc"' \
    || { echo "setup: dockerd did not take the runsc runtime (see /var/log/learningchain-dockerd.log)"; exit 1; }
fi

# PostgreSQL: a local cluster on 127.0.0.1 with a test role and database.
if ! pg_lsclusters -h 2>/dev/null | grep -q online; then
  echo "setup: starting PostgreSQL"
  pg_lsclusters -h | grep -q . || pg_createcluster 15 main >/dev/null
  ( close_inherited_fds; exec pg_ctlcluster 15 main start )
fi
su postgres -c "psql -tAc \"SELECT 1 FROM pg_roles WHERE rolname='lc'\"" | grep -q 1 \
  || su postgres -c "psql -qc \"CREATE ROLE lc LOGIN PASSWORD 'lc' CREATEDB\""
su postgres -c "psql -tAc \"SELECT 1 FROM pg_database WHERE datname='lc_test'\"" | grep -q 1 \
  || su postgres -c "psql -qc \"CREATE DATABASE lc_test OWNER lc\""
echo "setup: system ready"
