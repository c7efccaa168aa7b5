#!/usr/bin/env bash
# The README's test command: sets up (idempotent), then lint, layer contracts and every test
# (unit, adapter, lab, scenario). Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check monha tests bench
.venv/bin/ruff format --check monha tests bench
.venv/bin/lint-imports
.venv/bin/mypy
exec .venv/bin/pytest -ra "$@"
