#!/usr/bin/env bash
# The Airflow UI on the demo's Airflow home, with the simulators running behind the connections.
# Stop with Ctrl-C: standalone shuts down cleanly on SIGINT.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
"$PY" -m sandbox status >/dev/null 2>&1 || "$PY" -m sandbox start --contacts "${DEMO_CONTACTS:-3000}"
eval "$("$PY" -m sandbox env)"
"$AIRFLOW" db migrate >/dev/null
"$AIRFLOW" pools set ghl_api 2 "HighLevel API budget (mapped fetch tasks)" >/dev/null
"$AIRFLOW" pools set shift4shop_api 1 "Shift4Shop API budget (store writes)" >/dev/null
echo "Airflow UI: http://localhost:8080 (all users are admins in this local setup)"
exec "$AIRFLOW" standalone
