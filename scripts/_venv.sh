# Sourced by scripts/up and scripts/test: make sure .venv exists and holds commonlab with the
# given extras (reinstalling only when pyproject.toml changed since the last install).

# The Python the venv is built on must be one every user can run: on Slurm a workload job
# runs the facility's `commonlab` as the site's run-as user, and a Python under a private
# home (pyenv's under /root, say) would refuse them. The system's Python 3.11+ is preferred;
# PYTHON=... overrides.
_shared_python() {
  if [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo /usr/bin/python3
  else
    echo python3
  fi
}

ensure_venv() {
  local extras=$1 python=${PYTHON:-$(_shared_python)}
  if ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
    # Debian ships venv's pip bootstrap separately.
    printf '==> installing python3-venv from Debian\n'
    if [ "$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
    else sudo apt-get update -qq && sudo apt-get install -y -qq python3-venv >/dev/null; fi
  fi
  [ -x .venv/bin/python ] || "$python" -m venv .venv
  local stamp=".venv/.commonlab-installed-${extras:-core}"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    printf '==> installing commonlab%s into .venv\n' "${extras:+[$extras]}"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".${extras:+[$extras]}"
    touch "$stamp"
  fi
}
