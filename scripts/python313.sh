#!/usr/bin/env bash
# Prints the path of a Python 3.13 (the functions' runtime, python313): python3.13 on PATH, or
# the newest 3.13 a pyenv installation holds. The Makefile builds the venv on it.
set -uo pipefail
for candidate in python3.13 $(ls -d "$(pyenv root 2>/dev/null || echo /nonexistent)"/versions/3.13*/bin/python3.13 2>/dev/null | sort -V -r); do
  if "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null; then
    "$candidate" -c 'import sys; print(sys.executable)'
    exit 0
  fi
done
echo "Python 3.13 (the functions' runtime) is required: install it, or run make PYTHON=/path/to/python3.13" >&2
exit 1
