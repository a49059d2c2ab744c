#!/usr/bin/env bash
# The Airflow UI on the demo's Airflow home, with the simulators running behind the connections.
#
#   make ui                     http://127.0.0.1:8080, loopback only, every visitor an admin
#   UI_HOST=0.0.0.0 make ui     every interface: SimpleAuthManager's login is required (user admin,
#                               password in $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated)
#   UI_PORT=8081  UI_LOGIN=1 (login on loopback too)  UI_PARTS=api-server,scheduler,...  UI_SANDBOX=0
#   (use the AIRFLOW_CONN_* already in the environment instead of starting the simulators)
#
# One Ctrl-C stops everything: this script becomes scripts/airflow_ui.py, which traps INT/TERM, stops
# the Airflow parts (SIGINT, then SIGTERM, then SIGKILL, each after a bounded wait), then the
# simulators if this script started them, and exits only when none of its processes is left.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
UI_HOST="${UI_HOST:-127.0.0.1}"
UI_PORT="${UI_PORT:-8080}"
UI_PARTS="${UI_PARTS:-api-server,scheduler,dag-processor,triggerer}"
SANDBOX=("$PY" -m sandbox --dir "$LOCAL_DIR/sandbox")

# If this script starts the simulators, the supervisor stops them after the Airflow parts.
stop_sandbox=()
if [[ "${UI_SANDBOX:-1}" != 0 ]]; then
  if ! "${SANDBOX[@]}" status >/dev/null 2>&1; then
    "${SANDBOX[@]}" start --contacts "${DEMO_CONTACTS:-3000}"
    stop_sandbox=(--stop-sandbox "$LOCAL_DIR/sandbox")
    trap '"${SANDBOX[@]}" stop >/dev/null 2>&1 || true' EXIT  # until the supervisor takes over
  fi
  eval "$("${SANDBOX[@]}" env)"
fi

"$AIRFLOW" db migrate >/dev/null
"$AIRFLOW" pools set ghl_api 2 "HighLevel API budget (mapped fetch tasks)" >/dev/null
"$AIRFLOW" pools set shift4shop_api 1 "Shift4Shop API budget (store writes)" >/dev/null

login=()
[[ "${UI_LOGIN:-0}" == 1 ]] && login=(--login)
trap - EXIT
# exec: the supervisor is this process from here on, so a SIGINT to the script's pid reaches it.
# (A shell started in the background has SIGINT ignored and cannot trap it; Python can.)
exec "$PY" "$ROOT/scripts/airflow_ui.py" --host "$UI_HOST" --port "$UI_PORT" --parts "$UI_PARTS" \
  "${login[@]}" "${stop_sandbox[@]}"
