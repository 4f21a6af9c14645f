#!/usr/bin/env bash
# Prints the path of a Python 3.10 interpreter for the Rasa environment, or explains how to get one.
set -euo pipefail
candidates=()
[ -n "${PYTHON310:-}" ] && candidates+=("$PYTHON310")
command -v python3.10 >/dev/null 2>&1 && candidates+=("$(command -v python3.10)")
if command -v pyenv >/dev/null 2>&1; then
  root=$(pyenv root)
  for d in "$root"/versions/3.10*; do [ -x "$d/bin/python" ] && candidates+=("$d/bin/python"); done
fi
for d in "$HOME"/.pyenv/versions/3.10* /root/.pyenv/versions/3.10*; do
  [ -x "$d/bin/python" ] && candidates+=("$d/bin/python")
done
for py in "${candidates[@]}"; do
  if "$py" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 10) else 1)' 2>/dev/null; then
    echo "$py"
    exit 0
  fi
done
cat >&2 <<'MSG'
Rasa 3.6 needs Python 3.10, and none was found.
Install one (for example `pyenv install 3.10` or your distribution's python3.10 package with venv)
and run again, or point PYTHON310 at the interpreter: make run PYTHON310=/path/to/python3.10
MSG
exit 1
