"""Cost that matches the bill: the runtime prices every call from its full usage (input,
cache reads, cache writes, output, reasoning) at the tier its context length falls in,
and agrees with genai-prices' own `calc_price` to the micro-dollar."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from genai_prices import Usage, calc_price

from agentops_console.protocol.client import AgentClient
from agentops_console.runtime import ModelPrice, Runtime, RuntimeConfig
from agentops_console.runtime.pricing import Pricer, TokenUsage, usage_attributes

TOKEN = "pricing-split-token"

# model, provider as the agent names it, genai-prices provider id, input, cache read,
# cache write, output, reasoning
CASES = [
    ("gpt-4o", "openai", "openai", 12_000, 8_000, 0, 900, 0),
    ("o3-mini", "openai", "openai", 5_000, 1_024, 0, 4_000, 3_200),
    ("claude-sonnet-4-20250514", "anthropic", "anthropic", 30_000, 20_000, 6_000, 1_500, 0),
    # tiered: below and above Anthropic's 200k-token long-context threshold
    ("claude-sonnet-4-5", "anthropic", "anthropic", 150_000, 100_000, 10_000, 2_000, 500),
    ("claude-sonnet-4-5", "anthropic", "anthropic", 250_000, 100_000, 10_000, 2_000, 500),
    ("gemini-1.5-pro", "gcp.gemini", "google", 100_000, 0, 0, 3_000, 0),
    ("gemini-1.5-pro", "gcp.vertex_ai", "google", 130_000, 0, 0, 3_000, 0),
    ("gemini-2.5-pro", "google", "google", 300_000, 120_000, 0, 8_000, 6_000),
    ("deepseek-chat", "deepseek", "deepseek", 40_000, 30_000, 0, 2_000, 0),
    ("mistral-large-latest", "mistral_ai", "mistral", 9_000, 4_000, 0, 700, 0),
    ("grok-3", "x_ai", "x-ai", 20_000, 5_000, 0, 1_000, 0),
    ("llama-3.3-70b-versatile", "groq", "groq", 3_000, 0, 0, 400, 0),
    ("sonar", "perplexity", "perplexity", 2_000, 0, 0, 300, 0),  # per-request fee
    ("sonar-deep-research", "perplexity", "perplexity", 2_000, 0, 0, 9_000, 7_000),
]


def _expected(model: str, pid: str, i: int, cr: int, cw: int, o: int, r: int) -> float:
    usage = Usage(
        input_tokens=i,
        cache_read_tokens=cr,
        cache_write_tokens=cw,
        output_tokens=o,
        output_reasoning_tokens=r,
    )
    return float(calc_price(usage, model, provider_id=pid).total_price)


@pytest.fixture
def rt() -> Iterator[Runtime]:
    runtime = Runtime("pricing", "1.0", token=TOKEN)
    yield runtime
    runtime.stop()


@pytest.mark.parametrize(("model", "provider", "pid", "i", "cr", "cw", "o", "r"), CASES)
def test_cost_matches_genai_prices_to_the_micro_dollar(
    rt: Runtime, model: str, provider: str, pid: str, i: int, cr: int, cw: int, o: int, r: int
) -> None:
    with rt.session("bill", "user-1") as s:
        span = s.llm_call(
            model,
            i,
            o,
            cache_read_tokens=cr,
            cache_write_tokens=cw,
            reasoning_tokens=r,
            provider=provider,
        )
    expected = _expected(model, pid, i, cr, cw, o, r)
    assert expected > 0
    assert round(span.cost_usd, 6) == round(expected, 6)
    assert abs(span.cost_usd - expected) < 1e-9
    assert span.cost_split is not None and abs(sum(span.cost_split) - span.cost_usd) < 1e-12
    wire = span.to_model()
    assert (wire.tokens_cache_read, wire.tokens_cache_write, wire.tokens_reasoning) == (cr, cw, r)


def test_the_split_bills_each_part_at_its_own_rate(rt: Runtime) -> None:
    with rt.session("bill", "user-1") as s:
        span = s.llm_call(
            "claude-sonnet-4-20250514",
            30_000,
            1_500,
            cache_read_tokens=20_000,
            cache_write_tokens=6_000,
            reasoning_tokens=500,
            provider="anthropic",
        )
    split = span.to_model().cost_split
    assert split is not None
    # $3 input, $0.30 cache read, $3.75 cache write, $15 output (reasoning too) per MTok
    assert split.input == pytest.approx(4_000 * 3e-6)
    assert split.cache_read == pytest.approx(20_000 * 0.3e-6)
    assert split.cache_write == pytest.approx(6_000 * 3.75e-6)
    assert split.output == pytest.approx(1_000 * 15e-6)
    assert split.reasoning == pytest.approx(500 * 15e-6)
    assert split.request == 0


def test_a_long_context_call_is_priced_at_its_tier_and_the_rates_are_cached_once() -> None:
    pricer = Pricer()
    short = pricer.price("claude-sonnet-4-5", TokenUsage(input=200_000, output=1_000), "anthropic")
    long = pricer.price("claude-sonnet-4-5", TokenUsage(input=200_001, output=1_000), "anthropic")
    # cliff pricing: past 200k every token of the call costs the long-context rate
    assert short.input == pytest.approx(200_000 * 3e-6)
    assert long.input == pytest.approx(200_001 * 6e-6)
    assert long.output == pytest.approx(1_000 * 22.5e-6)
    assert pricer.cached() == 1


def test_session_detail_sums_the_split_over_http(rt: Runtime) -> None:
    url = rt.start(host="127.0.0.1", port=0)
    with rt.session("bill", "user-1") as s:
        s.llm_call("gpt-4o", 12_000, 900, cache_read_tokens=8_000, provider="openai")
        s.llm_call("gpt-4o", 15_000, 500, cache_read_tokens=12_000, reasoning_tokens=0)
        sid = s.id
    with AgentClient(url, TOKEN) as client:
        detail = client.session(sid)
    assert (detail.tokens_in, detail.tokens_cache_read, detail.tokens_reasoning) == (
        27_000,
        20_000,
        0,
    )
    assert detail.cost_split is not None
    assert detail.cost_split.cache_read == pytest.approx(20_000 * 1.25e-6)
    parts = detail.cost_split.model_dump().values()
    assert sum(parts) == pytest.approx(detail.cost_usd)
    assert [span.cost_split is not None for span in detail.spans] == [True, True]


def test_parts_larger_than_their_total_are_refused_in_the_agents_own_call(rt: Runtime) -> None:
    with rt.session("bill", "user-1") as s:
        with pytest.raises(ValueError, match="input_tokens counts the whole prompt"):
            s.llm_call("gpt-4o", 100, 10, cache_read_tokens=500)
        with pytest.raises(ValueError, match="output_tokens counts the whole completion"):
            s.llm_call("gpt-4o", 100, 10, reasoning_tokens=50)
        assert s.loop == 0  # a refused call is not counted


def test_telemetry_that_counts_cache_apart_is_added_up(rt: Runtime) -> None:
    """Anthropic's input_tokens exclude cache reads and writes; sent as they are, the
    cached tokens are added to the prompt rather than making a negative input."""
    with rt.session("bill", "user-1") as s:
        span = s.llm_call(
            "claude-sonnet-4-20250514",
            2_000,
            100,
            cache_read_tokens=50_000,
            cache_write_tokens=1_000,
            provider="anthropic",
            enforce=False,
        )
    assert span.tokens_in == 53_000
    assert span.cost_usd == pytest.approx(
        _expected("claude-sonnet-4-0", "anthropic", 53_000, 50_000, 1_000, 100, 0)
    )


def test_a_configured_price_bills_cached_input_as_input() -> None:
    config = RuntimeConfig(prices={"my-llama": ModelPrice(1.0, 2.0)})
    runtime = Runtime("pricing", "1.0", token=TOKEN, config=config)
    with runtime.session("bill", "user-1") as s:
        span = s.llm_call("my-llama", 1_000, 100, cache_read_tokens=400, reasoning_tokens=50)
    assert span.cost_usd == pytest.approx(1_000 * 1e-6 + 100 * 2e-6)


def test_usage_attributes_of_both_dialects_are_priced(rt: Runtime) -> None:
    """What the OTel mapping passes to `llm_call` (runtime/otel.py plugs `usage_attributes`
    in): GenAI semconv names and their OpenInference equivalents give the same cost."""
    genai = {
        "gen_ai.usage.input_tokens": 250_000,
        "gen_ai.usage.output_tokens": 2_000,
        "gen_ai.usage.cache_read.input_tokens": 100_000,
        "gen_ai.usage.cache_creation.input_tokens": 10_000,
        "gen_ai.usage.reasoning.output_tokens": 500,
    }
    openinference = {
        "llm.token_count.prompt": 250_000,
        "llm.token_count.completion": 2_000,
        "llm.token_count.prompt_details.cache_read": 100_000,
        "llm.token_count.prompt_details.cache_write": 10_000,
        "llm.token_count.completion_details.reasoning": 500,
    }
    expected = _expected("claude-sonnet-4-5", "anthropic", 250_000, 100_000, 10_000, 2_000, 500)
    with rt.session("bill", "user-1") as s:
        for attributes in (genai, openinference):
            span = s.llm_call(
                "claude-sonnet-4-5",
                provider="anthropic",
                enforce=False,
                **usage_attributes(attributes),
            )
            assert (span.tokens_cache_read, span.tokens_cache_write, span.tokens_reasoning) == (
                100_000,
                10_000,
                500,
            )
            assert round(span.cost_usd, 6) == round(expected, 6)
