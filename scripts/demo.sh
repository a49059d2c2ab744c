#!/usr/bin/env bash
# The main job on the embedded default: both simulators seeded with realistic contacts, two runs
# of ghl_shift4shop_sync through real Airflow (SQLite), with the contacts changed in between.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$ROOT"
CONTACTS="${DEMO_CONTACTS:-3000}"

"$PY" -m sandbox stop >/dev/null 2>&1 || true
rm -rf "$ROOT/.local/data" "$ROOT/.local/runs"
mkdir -p "$ROOT/.local/runs"
trap '"$PY" -m sandbox stop >/dev/null 2>&1 || true' EXIT

echo "== starting the GHL and Shift4Shop simulators ($CONTACTS contacts, rate limits on)"
"$PY" -m sandbox start --contacts "$CONTACTS" --seed 7 --dirty-share 0.02 --preexisting 60
eval "$("$PY" -m sandbox env)"

echo "== preparing Airflow (SQLite) in $AIRFLOW_HOME"
"$AIRFLOW" db migrate >"$ROOT/.local/runs/db-migrate.log" 2>&1
"$AIRFLOW" pools set ghl_api 2 "HighLevel API budget (mapped fetch tasks)" >/dev/null

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
}

run_sync first
echo "== changing 25 contacts in the GHL simulator (through its API)"
"$PY" -m sandbox touch --count 25
run_sync incremental
echo "== watermark"
"$PY" -m ghl_shift4shop watermark show
echo
echo "Quarantined records: $PY -m ghl_shift4shop quarantine   (with: source scripts/env.sh)"
echo "Airflow UI on this setup: make ui   (then open http://localhost:8080)"
