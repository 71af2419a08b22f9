"""Prefect flows and tasks. They orchestrate; the curation logic lives in plain functions."""

import os

# A fresh Prefect home needs ~25 s to start its ephemeral API, right at Prefect's default limit
# (see ../shared/README.md); and a curation service must not phone home.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
