"""Where the records DB lives when nobody says: next to the governance DB."""

from __future__ import annotations

import os
from pathlib import Path


def default_records_path() -> Path:
    """AGENTOPS_RECORDS, else `records.db` in the governance DB's directory."""
    from_env = os.environ.get("AGENTOPS_RECORDS", "").strip()
    if from_env:
        return Path(from_env).expanduser()
    from ..governance.paths import default_db_path

    return default_db_path().with_name("records.db")
