"""GHL → Shift4Shop sync: API clients, pipeline stages and state, imported by the DAGs in dags/."""
