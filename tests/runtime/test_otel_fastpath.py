"""The per-span fast paths (issue 12, target 4) give exactly what the plain code gives.

Each fast piece is checked against the slower, obvious reading it replaces: the unrolled
usage read against the `USAGE_ATTRIBUTES` table, the positional `SpanRecord.llm` against
keyword construction, and one run of LLM spans through the span processor against the
same calls through the explicit API (both now take `Session.record_llm`).
"""

from __future__ import annotations

import itertools
import random
from array import array
from collections.abc import Iterator
from dataclasses import fields

import pytest

from agentops_console.runtime import Runtime
from agentops_console.runtime.pricing import USAGE_ATTRIBUTES, usage_attributes, usage_values
from agentops_console.runtime.spans import NO_ATTRIBUTES, SpanRecord

_ORDER = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


@pytest.fixture
def rt() -> Iterator[Runtime]:
    runtime = Runtime("fastpath", "1.0", token="fastpath-token")
    yield runtime
    runtime.stop()


def _reference(attrs: dict[str, object]) -> tuple[object, ...]:
    found = usage_attributes(attrs)
    return tuple(found.get(k, 0) for k in (*_ORDER, "reasoning_tokens"))


def test_usage_values_reads_every_name_in_the_table_first_found_wins() -> None:
    names = [name for group in USAGE_ATTRIBUTES.values() for name in group]
    assert len(names) == 14  # a name added to the table must be added to usage_values
    for name in names:  # each name alone
        assert usage_values({name: 7}) == _reference({name: 7}), name
    rng = random.Random(12)
    values: list[object] = [0, 5, 1200, None, "12", -3, 2.5, True]
    for _ in range(2_000):  # random subsets: precedence within each group
        attrs = {n: rng.choice(values) for n in rng.sample(names, rng.randint(0, len(names)))}
        assert usage_values(attrs) == _reference(attrs), attrs


def test_llm_span_record_is_the_keyword_built_one() -> None:
    split = array("d", [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    fast = SpanRecord.llm(
        "s1", "chat m", 3, 10.0, 11.0, 1000.0, "u", "m", "p", (9, 8, 7, 6, 5), 0.5, split, "pa"
    )
    slow = SpanRecord(
        id=fast.id,
        session_id="s1",
        kind="llm",
        name="chat m",
        loop=3,
        started=10.0,
        ended=11.0,
        latency_ms=1000.0,
        outcome="ok",
        principal="u",
        model="m",
        provider="p",
        tokens_in=9,
        tokens_out=8,
        tokens_cache_read=7,
        tokens_cache_write=6,
        tokens_reasoning=5,
        cost_usd=0.5,
        cost_split=split,
        unpriced=False,
        parent_id="pa",
        attributes=NO_ATTRIBUTES,
    )
    names = [f.name for f in fields(SpanRecord)]
    assert [getattr(fast, n) for n in names] == [getattr(slow, n) for n in names]
    unpriced = SpanRecord.llm(
        "s", "n", 1, 0.0, 0.0, None, None, "x", None, (1, 1, 0, 0, 0), 0.0, None, None
    )
    assert unpriced.unpriced and unpriced.cost_split is None


def test_tool_span_record_is_the_keyword_built_one() -> None:
    fast = SpanRecord.tool_started("s1", "retrieval", "kb", 2, 10.0, "pa", "u", "v1", {"q": 1})
    slow = SpanRecord(
        id=fast.id,
        session_id="s1",
        kind="retrieval",
        name="kb",
        loop=2,
        started=10.0,
        parent_id="pa",
        principal="u",
        tool="kb",
        tool_version="v1",
        arguments={"q": 1},
    )
    names = [f.name for f in fields(SpanRecord)]
    assert [getattr(fast, n) for n in names] == [getattr(slow, n) for n in names]


def test_an_llm_call_and_its_otel_span_record_the_same(rt: Runtime) -> None:
    """The explicit API and the span processor take one path: same counts and dollars."""
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider()
    provider.add_span_processor(rt.span_processor())
    tracer = provider.get_tracer("t")
    usage = {
        "gen_ai.usage.input_tokens": 250_000,
        "gen_ai.usage.output_tokens": 2_000,
        "gen_ai.usage.cache_read.input_tokens": 100_000,
        "gen_ai.usage.cache_creation.input_tokens": 10_000,
        "gen_ai.usage.reasoning.output_tokens": 500,
    }
    with tracer.start_as_current_span(
        "invoke_agent a",
        attributes={"gen_ai.operation.name": "invoke_agent", "gen_ai.conversation.id": "c1"},
    ):
        for model, extra in itertools.product(("claude-sonnet-4-5", "no-such-model"), (0, 1)):
            attrs = {
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": model,
                "gen_ai.provider.name": "anthropic",
                **{k: v + extra for k, v in usage.items()},
            }
            with tracer.start_as_current_span(f"chat {model}", attributes=attrs):
                pass
    otel = rt.get("c1")
    assert otel is not None
    with rt.session(workflow="w", principal="u") as api:
        for model, extra in itertools.product(("claude-sonnet-4-5", "no-such-model"), (0, 1)):
            api.llm_call(
                model,
                250_000 + extra,
                2_000 + extra,
                cache_read_tokens=100_000 + extra,
                cache_write_tokens=10_000 + extra,
                reasoning_tokens=500 + extra,
                provider="anthropic",
                enforce=False,  # as telemetry records: the budget stop is flagged, not raised
            )
    fields = ("tokens_in", "tokens_out", "cost_usd", "tool_calls", "loops", "flags")
    a, b = otel.detail(), api.detail()
    for name in fields:
        if name == "flags":
            assert [f.message for f in getattr(a, name)] == [f.message for f in getattr(b, name)]
        else:
            assert getattr(a, name) == getattr(b, name), name
    assert a.cost_split == b.cost_split and a.cost_split is not None
    assert [s.cost_split for s in a.spans] == [s.cost_split for s in b.spans]
    assert [(s.tokens_in, s.tokens_cache_read, s.unpriced) for s in a.spans] == [
        (s.tokens_in, s.tokens_cache_read, s.unpriced) for s in b.spans
    ]
