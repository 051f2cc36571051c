"""One audit vocabulary, whoever acted: an action name, a target, a source and an outcome.

New rows are written in it (api.record_action); rows written before it keep their stored
text, since the hash chain covers it, and are read through the same mapping, so
`audit list --action session.kill` finds the console's old `console.session.kill`, the
watcher's old `watch.session.kill` and the CLI's rows alike (docs/governance.md,
"One audit vocabulary").

- action: `<noun>.<verb>` (`session.kill`, `workflow.disable`, `budget.set`, ...), the
  same name from every source; the source is its own field.
- target: `<agent>` for the agent itself, `<agent>/<kind>/<id>` for a thing inside it
  (`it-support/session/s-1`, `it-support/workflow/data-export`), `<agent>@<version>` for
  a release.
- source: cli, console, watch, import or demo.
- outcome: `ok`, `failed: <reason>` or `refused: <reason>` (the agent said no: 401/403).
"""

from __future__ import annotations

from typing import Any

SOURCES = ("cli", "console", "watch", "import", "demo")
#: Action prefixes rows carried before the source had its own field.
LEGACY_PREFIXES = {"console.": "console", "watch.": "watch", "import.": "import"}
#: Old action names and their names in the vocabulary.
RENAMED = {"budgets.set": "budget.set"}
#: `<kind>:<id>` targets (the console's and the watcher's old form, and budget scopes).
KINDS = ("session", "workflow", "approval", "incident")
#: The actor the demo seeds with (demo/seed.py).
DEMO_ACTOR = "agentops-demo"
_REFUSED = {401, 403}


def split_action(recorded: str) -> tuple[str, str | None]:
    """The vocabulary's name for a stored action, and the source its old prefix implies."""
    source = None
    for prefix, implied in LEGACY_PREFIXES.items():
        if recorded.startswith(prefix):
            recorded, source = recorded[len(prefix) :], implied
            break
    return RENAMED.get(recorded, recorded), source


def action_name(recorded: str) -> str:
    return split_action(recorded)[0]


def target_name(action: str, target: str, agent: str | None) -> str:
    """`target` in the one format; targets already in it, or without an agent, stay."""
    if not agent:
        return target
    name = action_name(action)
    kind, sep, ident = target.partition(":")
    if sep and kind in KINDS and ident:
        return f"{agent}/{kind}/{ident}"
    if name.startswith("budget.") and target == "agent":
        return agent
    head, sep, rest = target.partition("/")
    if sep and head == agent and rest and "/" not in rest:
        if name.startswith("workflow."):  # the CLI's old `<agent>/<workflow>`
            return f"{agent}/workflow/{rest}"
        if name == "owner.set":
            return f"{agent}/owner/{rest}"
    return target


def source_of(action: str, actor: str, details: dict[str, Any]) -> str:
    """The recorded source, else what the old row says about it (prefix, watch actor)."""
    recorded = details.get("source")
    if isinstance(recorded, str) and recorded in SOURCES:
        return recorded
    implied = split_action(action)[1]
    if implied is not None:
        return implied
    if actor.startswith("watch:"):
        return "watch"
    if actor == DEMO_ACTOR:
        return "demo"
    return "cli"


def outcome_of(action: str, details: dict[str, Any]) -> str:
    """`ok` unless the row records a failed or refused call (a governance change that
    committed is ok: it would not be in the log otherwise)."""
    outcome = details.get("outcome")
    error = details.get("error")
    reason = str(error) if error else ""
    if outcome in (None, "ok") and not action.endswith(".failed"):
        return "ok"
    if not isinstance(outcome, str) or outcome in ("", "ok"):
        outcome = "failed"
    if outcome in ("failed", "refused") and details.get("status") in _REFUSED:
        outcome = "refused"
    if ":" in outcome or not reason:
        return outcome
    return f"{outcome}: {reason}"


def stored_forms(wanted: str) -> list[str]:
    """Stored action names `--action wanted` (an exact name or a dotted prefix of one)
    matches: the vocabulary's own names plus every old spelling of them, as SQL LIKE
    patterns (escape character backslash)."""
    plain = wanted.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    names = [plain, f"{plain}.%"]
    for old, new in RENAMED.items():
        if any(name == wanted or name.startswith(f"{wanted}.") for name in (old, new)):
            names.append(old.replace("_", "\\_"))
    return [f"{prefix}{name}" for prefix in ("", *LEGACY_PREFIXES) for name in names]
