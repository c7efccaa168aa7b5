#!/usr/bin/env bash
# The README's first command: installs everything (idempotent), then runs the demo on the lab:
# two nodes in network namespaces, monha on the standby, kill -9 of the primary's MariaDB.
# Arguments go to the demo (--keep leaves the lab up).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m monha.lab.demo "$@"
