#!/usr/bin/env bash
# Idempotent set-up of everything halo's build, demo and tests need on a
# fresh Debian or Ubuntu machine: Debian packages, the Python virtual
# environment `.venv` (pinned; it also provides libtorch for the `tch`
# crate) and the files later steps fetch into `.cache/`.
#
# A second run downloads nothing: packages are checked before installing,
# and the venv is rebuilt only when a requirements file changed.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'setup: %s\n' "$*" >&2; }

# --- Debian packages -------------------------------------------------------
APT_PACKAGES=(
  python3-venv gcc make pkg-config
  mono-mcs nunit-console libnunit-cil-dev
  dicom3tools dcmtk valgrind
  fonts-dejavu-core
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]]; then
    log "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
  else
    log "missing Debian packages: ${missing[*]}"
    log "run: sudo apt-get install -y ${missing[*]}   and then run make again"
    exit 1
  fi
fi

# --- Rust --------------------------------------------------------------------
if ! command -v cargo >/dev/null; then
  log "cargo not found: install Rust 1.85 or later (https://rustup.rs), then run make again"
  exit 1
fi

# --- Python virtual environment -----------------------------------------------
PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
  log "creating .venv with $($PY --version)"
  "$PY" -m venv .venv
fi
stamp=.venv/.halo-requirements.sha256
# requirements-peers.txt belongs to .venv-peers (numpy below 2), not here.
reqs=$(ls tools/requirements*.txt | grep -v requirements-peers.txt)
want=$(cat $reqs | sha256sum | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  log "installing pinned Python packages (torch 2.13.0 brings libtorch; a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip==24.3.1
  for req in $reqs; do
    .venv/bin/python -m pip install -q -r "$req"
  done
  echo "$want" >"$stamp"
else
  log ".venv is up to date"
fi

# --- Further set-up steps (each idempotent) ------------------------------------
for step in tools/setup.d/*.sh; do
  [[ -e $step ]] || continue
  log "running $step"
  bash "$step"
done
log "done"
