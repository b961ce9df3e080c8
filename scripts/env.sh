#!/usr/bin/env bash
# Source this: creates (once) and activates the project's virtual environment.
# The environment lives outside the clone, keyed by a hash of the lock files it installs (the project itself
# comes from PYTHONPATH, not pip), so every clone on a machine shares it, a dependency change (make lock) builds
# anew, and an edit of pyproject.toml's tool settings does not.
# requirements.lock pins runtime + dev (make repro, make test); SANDMINE_BENCH=1 builds and activates
# a separate environment that adds requirements-bench.lock (torchgeo and Lightning, for bench/ only).
set -euo pipefail
SANDMINE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_cache="${SANDMINE_ENV_DIR:-$HOME/.cache/sandmine}"
_locks=("$SANDMINE_ROOT/requirements.lock")
_kind=""
if [ "${SANDMINE_BENCH:-0}" = 1 ]; then
  _locks+=("$SANDMINE_ROOT/requirements-bench.lock")
  _kind="bench-"
fi
_key=$(cat "${_locks[@]}" | sha256sum | cut -c1-16)
_venv="$_cache/venv-py311-$_kind$_key"
_python="${SANDMINE_PYTHON:-$(command -v python3.11 || command -v python3)}"
if [ ! -f "$_venv/.complete" ]; then
  "$_python" -c 'import sys; assert sys.version_info[:2] == (3, 11), "sandmine needs Python 3.11"'
  echo "sandmine: creating environment $_venv (a few minutes, once per dependency change)" >&2
  rm -rf "$_venv"
  "$_python" -m venv "$_venv"
  "$_venv/bin/pip" install -q --upgrade pip
  for _lock in "${_locks[@]}"; do
    "$_venv/bin/pip" install -q -r "$_lock" ${_kind:+-c "$SANDMINE_ROOT/requirements.lock"}
  done
  touch "$_venv/.complete"
fi
# the map report inlines Leaflet (npm, pinned by package-lock.json), installed once per lock
_npm="$_cache/npm-$(cat "$SANDMINE_ROOT/package-lock.json" | sha256sum | cut -c1-16)"
if [ ! -f "$_npm/.complete" ]; then
  if ! command -v npm >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "sandmine: installing npm (apt-get, once per machine)" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq npm) >/dev/null
  fi
  if command -v npm >/dev/null 2>&1; then
    echo "sandmine: installing Leaflet for the map report into $_npm (npm ci, once)" >&2
    rm -rf "$_npm" && mkdir -p "$_npm"
    cp "$SANDMINE_ROOT/package.json" "$SANDMINE_ROOT/package-lock.json" "$_npm/"
    (cd "$_npm" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) >/dev/null
    touch "$_npm/.complete"
  else
    echo "sandmine: npm is missing (the map report inlines Leaflet from it): sudo apt-get install npm" >&2
  fi
fi
export SANDMINE_LEAFLET_DIR="$_npm/node_modules/leaflet/dist"
# the map report's test renders it in headless Chromium (Debian's package)
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "sandmine: installing chromium (apt-get, once per machine)" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null
  else
    echo "sandmine: chromium is missing (the map test needs it): sudo apt-get install chromium" >&2
  fi
fi
# this clone's code comes from its own src/ (per shell: clones sharing the environment do not mix)
export PYTHONPATH="$SANDMINE_ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
export PATH="$SANDMINE_ROOT/bin:$_venv/bin:$PATH"
export VIRTUAL_ENV="$_venv"
