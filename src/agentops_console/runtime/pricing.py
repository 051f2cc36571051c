"""Cost of an LLM call from its token usage.

genai-prices knows the public price lists, but importing it costs ~300 ms and a lookup
~0.3 ms, so it is imported on the first priced call and each model's per-token rates are
cached. Rates come from a one-million-token probe: tiered prices that change with context
length are therefore approximated by their first tier. Config overrides win; a model that
neither knows is priced at 0 and reported as unpriced.

Model and provider names come from the agent or from telemetry, so they are untrusted:
the cache is an LRU of `cache_size` entries, and a name longer than `MAX_NAME` is never
looked up or kept (unpriced; the session flags it).
"""

from __future__ import annotations

import functools
from typing import Any

from .config import ModelPrice

#: No real model or provider id is this long; a longer one is noise, unpriced and uncached.
MAX_NAME = 256
#: Distinct (model, provider) pairs whose rates are kept.
CACHE_SIZE = 1024


def too_long(name: str | None) -> bool:
    return name is not None and len(name) > MAX_NAME


def shown(name: str) -> str:
    """A name as recorded on spans and flags: over-long ones cut to MAX_NAME characters."""
    return name if len(name) <= MAX_NAME else name[:MAX_NAME] + "…"


class Pricer:
    def __init__(
        self, overrides: dict[str, ModelPrice] | None = None, cache_size: int = CACHE_SIZE
    ) -> None:
        self._overrides = dict(overrides or {})
        # lru_cache is thread-safe, and two threads missing at once merely both look up
        self._cached = functools.lru_cache(maxsize=cache_size)(_lookup)

    def rates(self, model: str, provider: str | None = None) -> ModelPrice | None:
        price = self._overrides.get(model)
        if price is not None:
            return price
        if too_long(model) or too_long(provider):
            return None
        return self._cached(model, provider)

    def cached(self) -> int:
        """How many names' rates are kept now (at most `cache_size`)."""
        return self._cached.cache_info().currsize

    def cost(
        self, model: str, tokens_in: int, tokens_out: int, provider: str | None = None
    ) -> tuple[float, bool]:
        """(cost in USD, unpriced)."""
        price = self.rates(model, provider)
        if price is None:
            return 0.0, True
        return price.cost(tokens_in, tokens_out), False


def _lookup(model: str, provider: str | None) -> ModelPrice | None:
    try:
        from genai_prices import Usage, calc_price
    except ImportError:  # pragma: no cover - a broken install prices nothing
        return None
    million = 1_000_000
    for provider_id in (provider, None) if provider else (None,):
        try:
            kwargs: dict[str, Any] = {"provider_id": provider_id} if provider_id else {}
            result = calc_price(Usage(input_tokens=million, output_tokens=million), model, **kwargs)
        except (LookupError, ValueError):
            continue
        return ModelPrice(float(result.input_price), float(result.output_price))
    return None
