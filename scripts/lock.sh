#!/usr/bin/env bash
# Regenerates requirements.lock from pyproject.toml: every dependency of the node and of
# its tests (extras dev and ml), direct and transitive, at one exact version with the
# sha256 of every file pip may install. pip-tools is itself pinned; it runs in a virtualenv
# of its own so that the project's environment does not steer the resolution.
set -euo pipefail
cd "$(dirname "$0")/.."
tools=.venv-lock
test -x "$tools/bin/pip-compile" || {
  python3 -m venv "$tools"
  "$tools/bin/pip" install -q pip-tools==7.6.2
}
# The machine's pip configuration supplies the indexes (and the local CPU build of torch);
# the lock names none, so it installs the same on any machine that reaches PyPI.
"$tools/bin/pip-compile" --quiet --upgrade --generate-hashes --allow-unsafe --strip-extras \
  --extra dev --extra ml --no-emit-index-url --no-emit-find-links \
  --output-file requirements.lock pyproject.toml 2> >(grep -v "is ignored: it is neither" >&2)
echo "lock: requirements.lock has $(grep -c '^[a-z0-9].*==' requirements.lock) packages"
