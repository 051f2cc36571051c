"""Cost of an LLM call from its full token usage, the way the provider bills it.

genai-prices knows the public price lists, but importing it costs ~300 ms and a lookup
~0.3 ms, so it is imported on the first priced call and a model's rates are cached: one
table per (model, provider) holding the per-token rates of *every* tier (input, cache
read, cache write, output, reasoning, per-request fee), so a call is priced at the tier
its context length falls in, with plain float arithmetic. Rates that change with the time
of day or from a date (genai-prices' conditional prices) are resolved per call and their
tables memoised per price period. Config overrides win; a model that neither knows is
priced at 0 and reported as unpriced.

Token convention (genai-prices' and the OpenTelemetry GenAI one): `input` is the whole
prompt, cache reads and cache writes included; `output` is the whole completion,
reasoning included. A provider's own fields convert into it (docs/runtime.md, "Cost").

Model and provider names come from the agent or from telemetry, so they are untrusted:
the cache is an LRU of `cache_size` entries, and a name longer than `MAX_NAME` is never
looked up or kept (unpriced; the session flags it).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .config import ModelPrice

#: No real model or provider id is this long; a longer one is noise, unpriced and uncached.
MAX_NAME = 256
#: Distinct (model, provider) pairs whose rate tables are kept.
CACHE_SIZE = 1024

#: Provider names as OpenTelemetry (`gen_ai.provider.name`), OpenInference (`llm.provider`)
#: and LangChain (`ls_provider`) spell them, to genai-prices' provider ids.
PROVIDER_ALIASES: dict[str, str] = {
    "gcp.gemini": "google",
    "gcp.vertex_ai": "google",
    "gcp.gen_ai": "google",
    "google_genai": "google",
    "google_vertexai": "google",
    "vertexai": "google",
    "gemini": "google",
    "aws.bedrock": "aws",
    "bedrock": "aws",
    "amazon_bedrock": "aws",
    "azure.ai.openai": "azure",
    "azure.ai.inference": "azure",
    "azure_openai": "azure",
    "x_ai": "x-ai",
    "xai": "x-ai",
    "mistral_ai": "mistral",
    "mistralai": "mistral",
}


def too_long(name: str | None) -> bool:
    return name is not None and len(name) > MAX_NAME


def shown(name: str) -> str:
    """A name as recorded on spans and flags: over-long ones cut to MAX_NAME characters."""
    return name if len(name) <= MAX_NAME else name[:MAX_NAME] + "…"


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """One call's usage in the inclusive convention: the parts are subsets of the totals."""

    input: int = 0
    output: int = 0
    cache_read: int = 0
    cache_write: int = 0
    reasoning: int = 0


@dataclass(frozen=True, slots=True)
class Rates:
    """USD per token (per call for `request`) of one tier."""

    input: float
    output: float
    cache_read: float
    cache_write: float
    reasoning: float
    request: float = 0.0


@dataclass(frozen=True, slots=True)
class Cost:
    """A call's cost split by what was billed; the parts add up to `total`."""

    input: float = 0.0  # input not served from or written to the cache
    cache_read: float = 0.0
    cache_write: float = 0.0
    output: float = 0.0  # output other than reasoning
    reasoning: float = 0.0
    request: float = 0.0  # a per-request fee (some providers)
    unpriced: bool = False

    @property
    def total(self) -> float:
        return (
            self.input
            + self.cache_read
            + self.cache_write
            + self.output
            + self.reasoning
            + self.request
        )

    def parts(self) -> tuple[float, float, float, float, float, float]:
        return (
            self.input,
            self.cache_read,
            self.cache_write,
            self.output,
            self.reasoning,
            self.request,
        )


UNPRICED = Cost(unpriced=True)


@dataclass(frozen=True, slots=True)
class TierTable:
    """Rates by context length: `tiers[i]` applies when total input > `starts[i]`."""

    base: Rates
    starts: tuple[int, ...] = ()
    tiers: tuple[Rates, ...] = ()

    def at(self, input_tokens: int) -> Rates:
        """Cliff pricing, as genai-prices and the providers do: crossing a threshold
        prices *all* tokens of the call at that tier."""
        for start, rates in zip(reversed(self.starts), reversed(self.tiers), strict=True):
            if input_tokens > start:
                return rates
        return self.base


class PriceEntry:
    """What the cache keeps for one (model, provider): a fixed table, or the model's
    conditional prices with one table per price period seen (bounded by their number)."""

    __slots__ = ("_fixed", "_model", "_tables")

    def __init__(self, fixed: TierTable | None, model: Any = None) -> None:
        self._fixed = fixed
        self._model = model
        self._tables: dict[int, TierTable] = {}

    def table(self) -> TierTable:
        if self._fixed is not None:
            return self._fixed
        price = self._model.get_prices(datetime.now(UTC))
        table = self._tables.get(id(price))
        if table is None:  # the model's ModelPrice objects live as long as the snapshot
            table = self._tables[id(price)] = _tier_table(price)
        return table


class Pricer:
    def __init__(
        self, overrides: dict[str, ModelPrice] | None = None, cache_size: int = CACHE_SIZE
    ) -> None:
        self._overrides = {model: _override_entry(p) for model, p in (overrides or {}).items()}
        # lru_cache is thread-safe, and two threads missing at once merely both look up
        self._cached = functools.lru_cache(maxsize=cache_size)(_lookup)

    def entry(self, model: str, provider: str | None = None) -> PriceEntry | None:
        entry = self._overrides.get(model)
        if entry is not None:
            return entry
        if too_long(model) or too_long(provider):
            return None
        return self._cached(model, provider)

    def cached(self) -> int:
        """How many names' rate tables are kept now (at most `cache_size`)."""
        return self._cached.cache_info().currsize

    def price(self, model: str, usage: TokenUsage, provider: str | None = None) -> Cost:
        """The call's cost split; `usage` must already be in the inclusive convention."""
        parts = self.split(
            model,
            provider,
            usage.input,
            usage.output,
            usage.cache_read,
            usage.cache_write,
            usage.reasoning,
        )
        return UNPRICED if parts is None else Cost(*parts)

    def split(
        self,
        model: str,
        provider: str | None,
        input_tokens: int,
        output_tokens: int,
        cache_read: int = 0,
        cache_write: int = 0,
        reasoning: int = 0,
    ) -> tuple[float, float, float, float, float, float] | None:
        """`price` without the objects (the per-call path of every LLM span): the parts in
        `Cost.parts()` order, or None when unpriced. The same float operations in the same
        order as `price`, so the same dollars."""
        entry = self._overrides.get(model)
        if entry is None:
            if (len(model) > MAX_NAME) or (provider is not None and len(provider) > MAX_NAME):
                return None
            entry = self._cached(model, provider)
            if entry is None:
                return None
        table = entry._fixed
        if table is None:
            table = entry.table()
        rates = table.base if not table.starts else table.at(input_tokens)
        return (
            (input_tokens - cache_read - cache_write) * rates.input,
            cache_read * rates.cache_read,
            cache_write * rates.cache_write,
            (output_tokens - reasoning) * rates.output,
            reasoning * rates.reasoning,
            rates.request,
        )

    def cost(
        self, model: str, tokens_in: int, tokens_out: int, provider: str | None = None
    ) -> tuple[float, bool]:
        """(cost in USD, unpriced) of plain input and output tokens."""
        cost = self.price(model, TokenUsage(input=tokens_in, output=tokens_out), provider)
        return cost.total, cost.unpriced


def provider_id(provider: str | None) -> str | None:
    """genai-prices' id for a provider name as telemetry spells it."""
    if provider is None:
        return None
    key = provider.strip().lower()
    return PROVIDER_ALIASES.get(key, key) or None


def _override_entry(price: ModelPrice) -> PriceEntry:
    """A configured price: cached input costs as input, reasoning as output."""
    per_in, per_out = price.input_per_mtok / 1e6, price.output_per_mtok / 1e6
    return PriceEntry(TierTable(Rates(per_in, per_out, per_in, per_in, per_out)))


def _lookup(model: str, provider: str | None) -> PriceEntry | None:
    try:
        from genai_prices import Usage, calc_price
    except ImportError:  # pragma: no cover - a broken install prices nothing
        return None
    wanted = provider_id(provider)
    for pid in (wanted, None) if wanted else (None,):
        try:
            kwargs: dict[str, Any] = {"provider_id": pid} if pid else {}
            found = calc_price(Usage(input_tokens=1, output_tokens=1), model, **kwargs)
        except (LookupError, ValueError):
            continue
        info = found.model
        if isinstance(info.prices, list) and len(info.prices) > 1:
            return PriceEntry(None, info)  # prices that depend on the date or the hour
        return PriceEntry(_tier_table(found.model_price))
    return None


#: genai-prices price keys we bill, per token (`requests_kcount` is per thousand calls).
_KEYS = (
    "input_mtok",
    "output_mtok",
    "cache_read_mtok",
    "cache_write_mtok",
    "output_reasoning_mtok",
)


def _tier_table(price: Any) -> TierTable:
    """Flatten a genai-prices ModelPrice into per-token rates for each of its tiers."""
    from genai_prices.types import TieredPrices

    values = {key: getattr(price, key, None) for key in (*_KEYS, "requests_kcount")}
    starts = sorted(
        {tier.start for v in values.values() if isinstance(v, TieredPrices) for tier in v.tiers}
    )

    def rate(key: str, tokens_over: int | None) -> float | None:
        value = values[key]
        if value is None:
            return None
        if isinstance(value, TieredPrices):
            chosen = value.base
            if tokens_over is not None:
                for tier in value.tiers:
                    if tokens_over >= tier.start:
                        chosen = tier.price
            value = chosen
        per = 1_000 if key == "requests_kcount" else 1_000_000
        return float(value) / per

    def rates(tokens_over: int | None) -> Rates:
        per_in = rate("input_mtok", tokens_over) or 0.0
        per_out = rate("output_mtok", tokens_over) or 0.0
        # a cache or reasoning rate the model does not have bills those tokens as plain
        # input or output, as genai-prices does
        read, write = rate("cache_read_mtok", tokens_over), rate("cache_write_mtok", tokens_over)
        reasoning = rate("output_reasoning_mtok", tokens_over)
        return Rates(
            input=per_in,
            output=per_out,
            cache_read=per_in if read is None else read,
            cache_write=per_in if write is None else write,
            reasoning=per_out if reasoning is None else reasoning,
            request=rate("requests_kcount", tokens_over) or 0.0,
        )

    # tier i applies above starts[i]; `tokens_over` marks which tiers are crossed
    return TierTable(rates(None), tuple(starts), tuple(rates(start) for start in starts))


def inclusive_counts(
    input_tokens: int,
    output_tokens: int,
    cache_read: int = 0,
    cache_write: int = 0,
    reasoning: int = 0,
    *,
    strict: bool = True,
) -> tuple[int, int, int, int, int]:
    """Usage in the inclusive convention, as (input, output, cache read, cache write,
    reasoning). Parts larger than their total are a bug in the agent's own call
    (`strict`: ValueError); from telemetry they mean the sender counted them apart
    (Anthropic's input, Gemini's thoughts), so they are added to the total."""
    cached = cache_read + cache_write
    if cached > input_tokens:
        if strict:
            raise ValueError(
                f"cache_read_tokens + cache_write_tokens ({cached}) exceed input_tokens "
                f"({input_tokens}): input_tokens counts the whole prompt, cached tokens included"
            )
        input_tokens += cached
    if reasoning > output_tokens:
        if strict:
            raise ValueError(
                f"reasoning_tokens ({reasoning}) exceed output_tokens ({output_tokens}): "
                "output_tokens counts the whole completion, reasoning included"
            )
        output_tokens += reasoning
    return input_tokens, output_tokens, cache_read, cache_write, reasoning


#: Usage attributes, first found wins: OpenTelemetry GenAI (current, then deprecated
#: names), then OpenInference. Keys are `Session.llm_call` keyword arguments.
USAGE_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "input_tokens": (
        "gen_ai.usage.input_tokens",
        "gen_ai.usage.prompt_tokens",
        "llm.token_count.prompt",
    ),
    "output_tokens": (
        "gen_ai.usage.output_tokens",
        "gen_ai.usage.completion_tokens",
        "llm.token_count.completion",
    ),
    "cache_read_tokens": (
        "gen_ai.usage.cache_read.input_tokens",
        "gen_ai.usage.cache_read_input_tokens",
        "llm.token_count.prompt_details.cache_read",
    ),
    "cache_write_tokens": (
        "gen_ai.usage.cache_creation.input_tokens",
        "gen_ai.usage.cache_creation_input_tokens",
        "llm.token_count.prompt_details.cache_write",
    ),
    "reasoning_tokens": (
        "gen_ai.usage.reasoning.output_tokens",
        "llm.token_count.completion_details.reasoning",
    ),
}


def usage_values(attributes: Mapping[str, Any]) -> tuple[Any, Any, Any, Any, Any]:
    """`usage_attributes` as a tuple in `inclusive_counts` order, 0 where absent (raw
    values: check them with `session.billed_usage(..., strict=False)`). Unrolled: it runs
    on every LLM span, and most carry only the first two names."""
    get = attributes.get
    tokens_in = get("gen_ai.usage.input_tokens")
    if tokens_in is None:
        tokens_in = get("gen_ai.usage.prompt_tokens")
        if tokens_in is None:
            tokens_in = get("llm.token_count.prompt")
    tokens_out = get("gen_ai.usage.output_tokens")
    if tokens_out is None:
        tokens_out = get("gen_ai.usage.completion_tokens")
        if tokens_out is None:
            tokens_out = get("llm.token_count.completion")
    read = get("gen_ai.usage.cache_read.input_tokens")
    if read is None:
        read = get("gen_ai.usage.cache_read_input_tokens")
        if read is None:
            read = get("llm.token_count.prompt_details.cache_read")
    write = get("gen_ai.usage.cache_creation.input_tokens")
    if write is None:
        write = get("gen_ai.usage.cache_creation_input_tokens")
        if write is None:
            write = get("llm.token_count.prompt_details.cache_write")
    reasoning = get("gen_ai.usage.reasoning.output_tokens")
    if reasoning is None:
        reasoning = get("llm.token_count.completion_details.reasoning")
    return (
        0 if tokens_in is None else tokens_in,
        0 if tokens_out is None else tokens_out,
        0 if read is None else read,
        0 if write is None else write,
        0 if reasoning is None else reasoning,
    )


def usage_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """A span's usage as `llm_call` keyword arguments (raw values: `llm_call` with
    `enforce=False` counts nonsense as 0 and adds parts a sender counted apart)."""
    found: dict[str, Any] = {}
    for argument, names in USAGE_ATTRIBUTES.items():
        for name in names:
            value = attributes.get(name)
            if value is not None:
                found[argument] = value
                break
    return found
