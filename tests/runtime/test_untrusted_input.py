"""Untrusted input into the runtime: whatever an agent passes, the guard answers, never crashes;
and the runtime stays free of the operator-side dependencies."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentops_console.protocol.models import Budgets
from agentops_console.runtime import PolicyDenied, Runtime, RuntimeConfig, ToolSpec

POLICY = (Path(__file__).parents[2] / "fixtures" / "policies" / "it-support.cedar").read_text()

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)

RT = Runtime(
    "fuzz",
    "1",
    tenant="acme",
    policy=POLICY,
    config=RuntimeConfig(budgets=Budgets(), approval_timeout_s=0.01),
    tools=[ToolSpec("export_data", category="export", args={"region": "str", "tenant": "str"})],
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arguments=json_values, principal=st.text(min_size=1, max_size=30))
def test_any_arguments_get_a_decision_not_a_crash(arguments: object, principal: str) -> None:
    with RT.session(workflow="fuzz", principal=principal) as s:
        try:
            with s.tool_call("export_data", arguments) as call:
                call.output = arguments
        except PolicyDenied:
            pass
        detail = RT.session_detail(s.id)
        assert detail is not None
        span = detail.spans[-1]
        assert span.policy is not None
        assert span.policy.decision in ("allow", "deny", "approval_required", "rejected")
        detail.model_dump_json()  # always serialisable for the endpoint


@pytest.mark.parametrize("bad", ["[budgets]\nmax_tool_calls = -1", "[limits]\nnope = 1", "x = ["])
def test_bad_config_is_one_clear_error(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "agentops.toml"
    path.write_text(bad)
    with pytest.raises(ValueError, match=str(path)) as err:
        RuntimeConfig.from_toml(path)
    assert "\n" not in str(err.value)


def test_runtime_imports_no_operator_side_modules() -> None:
    script = textwrap.dedent(
        """
        import sys
        from agentops_console.runtime import Runtime
        rt = Runtime("a", "1", token="t")
        rt.start()
        with rt.session(workflow="w", principal="p") as s:
            with s.tool_call("t", {"x": 1}):
                pass
        rt.stop()
        banned = ("textual", "typer", "sqlite3", "sqlite_utils", "httpx", "rich")
        print(",".join(sorted(m for m in sys.modules if m.split(".")[0] in banned)))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == ""
