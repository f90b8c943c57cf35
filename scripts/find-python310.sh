#!/usr/bin/env bash
# Print the path of a Python 3.10 interpreter for the Rasa server (Rasa 3.6 runs on 3.8
# to 3.10 only), or explain what to install and fail.
set -u
candidates=()
[ -n "${RASA_PYTHON:-}" ] && candidates+=("$RASA_PYTHON")
command -v python3.10 >/dev/null 2>&1 && candidates+=("$(command -v python3.10)")
if command -v pyenv >/dev/null 2>&1; then
  for p in "$(pyenv root)"/versions/3.10.*/bin/python3.10; do [ -x "$p" ] && candidates+=("$p"); done
fi
for p in "$HOME"/.pyenv/versions/3.10.*/bin/python3.10 /usr/local/bin/python3.10 /usr/bin/python3.10; do
  [ -x "$p" ] && candidates+=("$p")
done
for p in "${candidates[@]}"; do
  if "$p" -c 'import sys, venv; sys.exit(0 if sys.version_info[:2] == (3, 10) else 1)' 2>/dev/null; then
    echo "$p"
    exit 0
  fi
done
# printf is a shell builtin: the message shows even with a broken PATH.
printf '%s\n' \
  "No Python 3.10 found. The Rasa server (rasa 3.6.21) needs Python 3.10 (3.8 to 3.10)." \
  "Install one of:" \
  "  - pyenv:   pyenv install 3.10      (then run make again)" \
  "  - Debian:  apt-get install python3.10 python3.10-venv   (where your release has it)" \
  "  - or set RASA_PYTHON=/path/to/python3.10" >&2
exit 1
