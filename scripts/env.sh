#!/usr/bin/env bash
# Source this: creates (once) and activates the project's virtual environment.
# The environment lives outside the clone, keyed by a hash of requirements.lock and
# pyproject.toml, so every clone on a machine shares it and a dependency change builds anew.
set -euo pipefail
SANDMINE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_key=$(cat "$SANDMINE_ROOT/requirements.lock" "$SANDMINE_ROOT/pyproject.toml" | sha256sum | cut -c1-16)
_venv="${SANDMINE_ENV_DIR:-$HOME/.cache/sandmine}/venv-py311-$_key"
_python="${SANDMINE_PYTHON:-$(command -v python3.11 || command -v python3)}"
if [ ! -f "$_venv/.complete" ]; then
  "$_python" -c 'import sys; assert sys.version_info[:2] == (3, 11), "sandmine needs Python 3.11"'
  echo "sandmine: creating environment $_venv (a few minutes, once per dependency change)" >&2
  rm -rf "$_venv"
  "$_python" -m venv "$_venv"
  "$_venv/bin/pip" install -q --upgrade pip
  "$_venv/bin/pip" install -q -r "$SANDMINE_ROOT/requirements.lock"
  touch "$_venv/.complete"
fi
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
