# Sourced by the demo and UI scripts: one Airflow home and one state DB under .local/.
# GHL_S4S_LOCAL_DIR moves all of it (the UI tests use a throw-away one); GHL_S4S_VENV names the
# virtualenv when it is not this checkout's .venv.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL_DIR="${GHL_S4S_LOCAL_DIR:-$ROOT/.local}"
VENV_DIR="${GHL_S4S_VENV:-$ROOT/.venv}"
export AIRFLOW_HOME="$LOCAL_DIR/airflow"
export AIRFLOW__CORE__DAGS_FOLDER="$ROOT/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$ROOT/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__PARALLELISM=4
export GHL_S4S_DATA_DIR="$LOCAL_DIR/data"
export PYTHONPATH="$ROOT/plugins:$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PATH="$VENV_DIR/bin:$PATH"  # Airflow starts task processes as `airflow ...`
PY="$VENV_DIR/bin/python"
AIRFLOW="$VENV_DIR/bin/airflow"
