# Sourced by scripts/up and scripts/test: make sure .venv exists and holds commonlab with the
# given extras (reinstalling only when pyproject.toml changed since the last install).
ensure_venv() {
  local extras=$1 python=${PYTHON:-python3}
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
