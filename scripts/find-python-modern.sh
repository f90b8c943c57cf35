#!/usr/bin/env bash
# Print the path of a Python 3.11 or newer for the action server, tools and tests.
set -u
for p in "${APP_PYTHON:-}" python3.13 python3.12 python3.11 python3; do
  [ -n "$p" ] || continue
  exe=$(command -v "$p" 2>/dev/null) || continue
  if "$exe" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
    echo "$exe"
    exit 0
  fi
done
echo "No Python 3.11 or newer found: install one (pyenv install 3.11) or set APP_PYTHON." >&2
exit 1
