"""Scenario files: the shipped one loads, and every mistake names its file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentops_console.demo.scenario import (
    DEFAULT_SCENARIO,
    TROUBLE_KINDS,
    ScenarioError,
    load_scenario,
)

POLICY = DEFAULT_SCENARIO.parents[1] / "policies" / "it-support.cedar"

GOOD = f"""\
[scenario]
name = "tiny"
cycle_s = 30

[[agents]]
name = "helper"
tenant = "acme"
policy = "{POLICY}"
models = ["gpt-4o-mini"]
principals = ["u1"]

[[agents.tools]]
name = "kb_search"
category = "retrieval"
read_only = true
corpus = "it-kb"

[[agents.workflows]]
name = "triage"
steps = ["kb_search"]

[[trouble]]
kind = "runaway_loop"
at_s = 1
agent = "helper"
workflow = "triage"
tool = "kb_search"
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_scenario_has_every_kind_of_trouble() -> None:
    scenario = load_scenario()
    assert {a.name for a in scenario.agents} == {"it-support", "billing", "research"}
    assert {t.kind for t in scenario.trouble} == set(TROUBLE_KINDS)
    tools = {t.name: t for t in scenario.agent("it-support").tools}
    assert tools["kb_search"].category == "retrieval" and tools["kb_search"].read_only
    assert tools["reset_password"].category == "identity"
    assert tools["change_account"].customer_facing and not tools["change_account"].read_only
    assert tools["export_data"].category == "export"
    assert "@id" in scenario.policy_text(scenario.agent("billing"))


def test_a_minimal_file_loads(tmp_path: Path) -> None:
    scenario = load_scenario(_write(tmp_path, GOOD))
    assert scenario.name == "tiny"
    assert scenario.trouble[0].attempts == 12  # defaults fill in


@pytest.mark.parametrize(
    ("old", "new", "line", "words"),
    [
        ('category = "retrieval"', 'category = "retrieval"\ncolour = "red"', 15, "colour"),
        ('steps = ["kb_search"]', 'steps = ["kb_searh"]', 20, "unknown tool 'kb_searh'"),
        ("at_s = 1", "at_s = -1", 24, "greater than or equal to 0"),
        ('kind = "runaway_loop"', 'kind = "meteor"', 23, "trouble[0].kind"),
        ('agent = "helper"\nworkflow', 'agent = "nobody"\nworkflow', 25, "unknown agent"),
        ('tool = "kb_search"\n', "", 22, "runaway_loop needs a tool"),
        ('models = ["gpt-4o-mini"]', "models = []", 9, "agents[0].models"),
        (f'policy = "{POLICY}"', 'policy = "nope.cedar"', 8, "policy file 'nope.cedar'"),
        ("at_s = 1", "at_s = 99", 24, "before the end of the cycle"),
    ],
)
def test_mistakes_name_file_line_and_place(
    tmp_path: Path, old: str, new: str, line: int, words: str
) -> None:
    assert old in GOOD
    path = _write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert words in message
    assert "\n" not in message


def test_broken_toml_and_missing_file(tmp_path: Path) -> None:
    path = _write(tmp_path, GOOD.replace('name = "tiny"', 'name = "tiny'))
    with pytest.raises(ScenarioError, match=rf"^{path}:2: invalid TOML"):
        load_scenario(path)
    with pytest.raises(ScenarioError, match="cannot read scenario"):
        load_scenario(tmp_path / "absent.toml")
