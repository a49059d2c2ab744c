#!/usr/bin/env bash
# The main job on the embedded default: both simulators seeded with realistic contacts, two runs
# of ghl_shift4shop_sync through real Airflow (SQLite), with the contacts changed in between.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
CONTACTS="${DEMO_CONTACTS:-2000}"
# lenient or strict: which reading of the APIs' unconfirmed behaviours the simulators take.
PROFILE="${DEMO_PROFILE:-lenient}"
# The first sync reads every contact's notes (GHL has no bulk notes endpoint): at GHL's documented
# 100 requests per 10 s that takes minutes for 2,000 contacts. The demo runs both simulators, and
# the client's budgets, at SPEED times the documented limits, and prints what the same calls would
# take at the real limits.
SPEED="${DEMO_SPEED:-20}"
export GHL_S4S_GHL_BURST=$((10 * SPEED)) GHL_S4S_GHL_RATE_PER_S=$((9 * SPEED))
export GHL_S4S_SHIFT4SHOP_BURST=$((40 * SPEED)) GHL_S4S_SHIFT4SHOP_RATE_PER_S=$((2 * SPEED))

"$PY" -m sandbox stop >/dev/null 2>&1 || true
rm -rf "$ROOT/.local/data" "$ROOT/.local/runs"
mkdir -p "$ROOT/.local/runs"
trap '"$PY" -m sandbox stop >/dev/null 2>&1 || true' EXIT

echo "== starting the GHL and Shift4Shop simulators ($CONTACTS contacts with tasks, notes and appointments;"
echo "   rate limits on, at ${SPEED}x the documented ones; $PROFILE profile)"
"$PY" -m sandbox start --contacts "$CONTACTS" --seed 7 --dirty-share 0.02 --preexisting 60 --speed "$SPEED" \
  --profile "$PROFILE"
eval "$("$PY" -m sandbox env)"

echo "== preparing Airflow (SQLite) in $AIRFLOW_HOME"
"$AIRFLOW" db migrate >"$ROOT/.local/runs/db-migrate.log" 2>&1
"$AIRFLOW" pools set ghl_api 2 "HighLevel API budget (mapped fetch tasks)" >/dev/null
"$AIRFLOW" pools set shift4shop_api 1 "Shift4Shop API budget (store writes)" >/dev/null

run_sync() {
  local label="$1" log="$ROOT/.local/runs/$1.log"
  echo "== airflow dags test ghl_shift4shop_sync   ($label run; log: ${log#$ROOT/})"
  local started=$SECONDS
  if ! "$AIRFLOW" dags test ghl_shift4shop_sync >"$log" 2>&1; then
    tail -n 60 "$log"; echo "the $label run failed (full log above)" >&2; exit 1
  fi
  if ! grep -q "state=success\|state=<DagRunState.SUCCESS" "$log"; then
    grep -iE "error|failed" "$log" | tail -n 30; echo "the $label run did not succeed" >&2; exit 1
  fi
  echo "   finished in $((SECONDS - started)) s"
  "$PY" -m ghl_shift4shop runs --limit 1 --table
  "$PY" - <<'PY'
from ghl_shift4shop.settings import load_settings
from ghl_shift4shop.state import StateStore
last = StateStore(load_settings().state_url).recent_summaries(1)[0]
minutes = (last["calls_ghl"] / 10 + last["calls_shift4shop"] / 2) / 60
print(f"   at the documented limits (GHL 100 per 10 s, store 2 per s) these calls take about {minutes:.1f} min")
PY
}

run_sync first
echo "== changing 25 contacts in the GHL simulator (through its API)"
"$PY" -m sandbox touch --count 25
run_sync incremental
echo "== watermark"
"$PY" -m ghl_shift4shop watermark show
echo "== CRM tickets and messages in the store (off by default: the store e-mails customers for them)"
"$PY" - <<'PY'
import requests, json, os
conn = json.loads(os.environ["AIRFLOW_CONN_SHIFT4SHOP_DEFAULT"])
tickets = requests.get(conn["host"] + "/_sim/crm", timeout=30).json().get("tickets", [])
messages = sum(len(t.get("CrmMessageList") or []) for t in tickets)
print(f"   {len(tickets)} tickets, {messages} messages: no e-mail went to a customer because of the sync")
PY
echo
echo "Quarantined records: $PY -m ghl_shift4shop quarantine   (with: source scripts/env.sh)"
echo "Airflow UI on this setup: make ui   (then open http://127.0.0.1:8080)"
