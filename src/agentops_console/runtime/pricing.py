"""Cost of an LLM call from its token usage.

genai-prices knows the public price lists, but importing it costs ~300 ms and a lookup
~0.3 ms, so it is imported on the first priced call and each model's per-token rates are
cached. Rates come from a one-million-token probe: tiered prices that change with context
length are therefore approximated by their first tier. Config overrides win; a model that
neither knows is priced at 0 and reported as unpriced.
"""

from __future__ import annotations

import threading
from typing import Any

from .config import ModelPrice


class Pricer:
    def __init__(self, overrides: dict[str, ModelPrice] | None = None) -> None:
        self._overrides = dict(overrides or {})
        self._cache: dict[tuple[str, str | None], ModelPrice | None] = {}
        self._lock = threading.Lock()

    def rates(self, model: str, provider: str | None = None) -> ModelPrice | None:
        key = (model, provider)
        try:
            return self._cache[key]
        except KeyError:
            pass
        price = self._overrides.get(model)
        if price is None:
            price = _lookup(model, provider)
        with self._lock:
            self._cache[key] = price
        return price

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
