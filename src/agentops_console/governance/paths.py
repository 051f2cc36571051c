"""Where the governance DB, rubrics and runbooks live when nobody says otherwise."""

from __future__ import annotations

import os
from pathlib import Path

#: The project top level (rubrics/ and runbooks/ ship beside src/).
PROJECT_ROOT = Path(__file__).resolve().parents[3]


def default_db_path() -> Path:
    """AGENTOPS_DB, else the platform's per-user data dir (platformdirs)."""
    from_env = os.environ.get("AGENTOPS_DB", "").strip()
    if from_env:
        return Path(from_env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("agentops-console", appauthor=False)) / "governance.db"


def _resolve_dir(env: str, name: str) -> Path:
    from_env = os.environ.get(env, "").strip()
    if from_env:
        return Path(from_env).expanduser()
    local = Path.cwd() / name
    if local.is_dir():
        return local
    return PROJECT_ROOT / name


def rubrics_dir() -> Path:
    """AGENTOPS_RUBRICS, else ./rubrics, else the rubrics shipped with the project."""
    return _resolve_dir("AGENTOPS_RUBRICS", "rubrics")


def runbooks_dir() -> Path:
    """AGENTOPS_RUNBOOKS, else ./runbooks, else the runbooks shipped with the project."""
    return _resolve_dir("AGENTOPS_RUNBOOKS", "runbooks")
