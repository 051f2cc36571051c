"""Runtime settings: defaults that match the reference policy, overridable from TOML.

A config file is optional; every field has a default an operator would pick for an
IT-support style agent. The file is read with the standard library's tomllib, so the
runtime gains no dependency for it.

```toml
[budgets]                      # agent-wide defaults (a policy's @max_* annotations win)
max_cost_usd_session = 2.0
max_cost_usd_loop = 0.20
max_consecutive_tool_calls = 5

[prices."my-local-llama"]      # USD per million tokens; overrides genai-prices
input_per_mtok = 0.0
output_per_mtok = 0.0

[limits]
approval_timeout_s = 300
finished_sessions = 1000

[endpoint]                     # see docs/endpoint.md
token_env = "AGENTOPS_TOKEN"           # variable holding the control token (else generated)
read_token_env = "AGENTOPS_READ_TOKEN" # variable holding the read-only token (optional)
allowed_origins = []                   # browser Origins allowed to call (none by default)
allowed_hosts = []                     # extra Host names when bound to a non-loopback address

[record]                       # what of the agent's values leaves the process (docs/runtime.md)
keep_arguments = true
keep_outputs = true
keep_inputs = true                     # the session's task input and final answer
max_value_chars = 16384                # longer values are cut, with a marker
export_otel = false                    # sessions as GenAI spans on the global TracerProvider
```
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..protocol.models import Budgets


@dataclass(frozen=True, slots=True)
class ModelPrice:
    """USD per million tokens."""

    input_per_mtok: float
    output_per_mtok: float

    def cost(self, tokens_in: int, tokens_out: int) -> float:
        return (tokens_in * self.input_per_mtok + tokens_out * self.output_per_mtok) / 1e6


def _default_budgets() -> Budgets:
    return Budgets(max_cost_usd_session=2.00, max_cost_usd_loop=0.20, max_consecutive_tool_calls=5)


@dataclass(slots=True)
class RuntimeConfig:
    budgets: Budgets = field(default_factory=_default_budgets)
    prices: dict[str, ModelPrice] = field(default_factory=dict)
    #: A pending human checkpoint is denied after this long.
    approval_timeout_s: float = 300.0
    #: Finished sessions kept for the console; older ones are evicted (and counted).
    finished_sessions: int = 1000
    #: Spans kept per session; a runaway session keeps its newest ones.
    spans_per_session: int = 500
    #: Events kept for SSE resume.
    event_log_size: int = 10_000
    #: The same step (tool + arguments) retried more than this is a runaway loop.
    max_retries: int = 3
    #: Share of a budget that raises a warning flag.
    warn_ratio: float = 0.8
    #: A retrieval under this confidence that keeps growing the context is flagged.
    low_confidence: float = 0.5
    #: Consecutive low-confidence retrievals (with growing context) before the flag.
    low_confidence_streak: int = 2
    #: An OTel session without a span for this long is considered finished.
    otel_idle_s: float = 300.0
    #: Active sessions made from OTel spans at most; the least recently active is ended
    #: to make room for a new one (telemetry may never send the root span that ends one).
    otel_sessions_max: int = 10_000
    #: Endpoint: open connections at most, and connections that have not yet made an
    #: authenticated request (503 beyond either); the latter must send a request's headers
    #: within `header_timeout_s` or be dropped (slow-header clients hold no thread for long).
    max_connections: int = 256
    max_unauthenticated_connections: int = 32
    header_timeout_s: float = 10.0
    #: Endpoint `[endpoint]` section: names of the variables holding the tokens (read when
    #: the Runtime is built; an explicit token= wins), and who may call from a browser.
    token_env: str | None = None
    read_token_env: str | None = None
    allowed_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    #: `[record]`: which of the agent's values are kept (and so served and exported), and
    #: the bound on each one's JSON text; `export_otel` emits sessions on the global provider.
    keep_arguments: bool = True
    keep_outputs: bool = True
    keep_inputs: bool = True
    max_value_chars: int = 16_384
    export_otel: bool = False

    @classmethod
    def from_toml(cls, path: str | Path) -> RuntimeConfig:
        """Load a config file; a bad file raises ValueError naming the file and the problem."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ValueError(f"{path}: cannot read config: {exc.strerror or exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ValueError(f"{path}: invalid TOML: {exc}") from None
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "config") -> RuntimeConfig:
        config = cls()
        unknown = set(data) - {"budgets", "prices", "limits", "endpoint", "record"}
        if unknown:
            raise ValueError(f"{source}: unknown section(s): {', '.join(sorted(unknown))}")
        try:
            if "budgets" in data:
                config.budgets = Budgets.model_validate(data["budgets"]).merged_over(config.budgets)
            for model, price in data.get("prices", {}).items():
                config.prices[model] = ModelPrice(
                    float(price["input_per_mtok"]), float(price["output_per_mtok"])
                )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{source}: {' '.join(str(exc).split())}") from None
        _endpoint_section(config, data.get("endpoint", {}), source)
        _record_section(config, data.get("record", {}), source)
        limits = data.get("limits", {})
        names = {f.name for f in fields(cls)} - {
            "budgets",
            "prices",
            *_ENDPOINT_KEYS,
            *_RECORD_FLAGS,
            "max_value_chars",
        }
        for key, value in limits.items():
            if key not in names:
                raise ValueError(f"{source}: unknown limit {key!r}")
            if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{source}: limit {key!r} must be a positive number")
            setattr(config, key, type(getattr(config, key))(value))
        return config


_ENDPOINT_KEYS = ("token_env", "read_token_env", "allowed_origins", "allowed_hosts")


def _endpoint_section(config: RuntimeConfig, section: Any, source: str) -> None:
    if not isinstance(section, dict):
        raise ValueError(f"{source}: [endpoint] must be a table")
    for key, value in section.items():
        if key in ("token_env", "read_token_env"):
            if not isinstance(value, str) or not value.strip():
                raise ValueError(f"{source}: endpoint {key!r} must name a variable")
            setattr(config, key, value.strip())
        elif key in ("allowed_origins", "allowed_hosts"):
            if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                raise ValueError(f"{source}: endpoint {key!r} must be a list of strings")
            setattr(config, key, tuple(value))
        else:
            raise ValueError(f"{source}: unknown endpoint key {key!r}")


_RECORD_FLAGS = ("keep_arguments", "keep_outputs", "keep_inputs", "export_otel")


def _record_section(config: RuntimeConfig, section: Any, source: str) -> None:
    if not isinstance(section, dict):
        raise ValueError(f"{source}: [record] must be a table")
    for key, value in section.items():
        if key in _RECORD_FLAGS:
            if not isinstance(value, bool):
                raise ValueError(f"{source}: record {key!r} must be true or false")
            setattr(config, key, value)
        elif key == "max_value_chars":
            if not isinstance(value, int) or isinstance(value, bool) or not 64 <= value <= 1 << 24:
                raise ValueError(f"{source}: record 'max_value_chars' must be 64 to 16777216")
            config.max_value_chars = value
        else:
            raise ValueError(f"{source}: unknown record key {key!r}")
