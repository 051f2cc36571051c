"""The governance commands of `agentops`: registry, owners, rubric, releases, sign-off,
policy push, runbooks, incidents, report, rollback, kill switch, audit, export/import.

Each group lives in its own cli/gov_*.py module; this one only wires them to the app.
"""

import typer

from . import gov_audit, gov_incident, gov_ops, gov_registry, gov_release


def register(app: typer.Typer) -> None:
    gov_registry.register(app)
    gov_release.register(app)
    gov_ops.register(app)
    gov_incident.register(app)
    gov_audit.register(app)
