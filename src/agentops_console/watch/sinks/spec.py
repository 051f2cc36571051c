"""`[[sink]]` tables of watch.toml, and the sinks they become once secrets are read.

Secrets never sit in the file: a PagerDuty routing key, a webhook bearer token and a Slack
webhook URL (the URL is the secret) are named by environment variable, read at startup,
and kept out of every repr and error message.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..errors import WatchConfigError
from .notice import SEVERITY_RANK, IncidentSeverity, Notice
from .payloads import pagerduty_payload, slack_payload, webhook_payload

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"

EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
SinkName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Per-attempt timeout, attempts in all, exponential backoff with jitter between."""

    timeout_s: float = 5.0
    max_attempts: int = 5
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    jitter: float = 0.5  # share of each delay that is randomised

    def delay(self, retry: int, draw: float) -> float:
        """Seconds before retry number `retry` (1-based); `draw` is uniform in [0, 1)."""
        base = min(self.backoff_max_s, self.backoff_initial_s * 2.0 ** max(0, retry - 1))
        return base * (1 - self.jitter + self.jitter * draw)


@dataclass(frozen=True, slots=True)
class Sink:
    """A configured destination, secrets resolved."""

    name: str
    kind: str
    url: str = field(repr=False)
    render: Callable[[Notice], dict[str, Any]] = field(repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    min_severity: IncidentSeverity = "low"
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    queue_size: int = 1000
    #: A `file` sink appends here instead of POSTing to `url` (which is then empty).
    path: Path | None = None

    def wants(self, notice: Notice) -> bool:
        return SEVERITY_RANK[notice.severity] >= SEVERITY_RANK[self.min_severity]


class _SinkSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: SinkName | None = None
    url: str | None = None
    url_env: EnvName | None = None
    min_severity: IncidentSeverity = "low"
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 5.0
    max_attempts: Annotated[int, Field(ge=1, le=20)] = 5
    backoff_initial_s: Annotated[float, Field(ge=0, le=60)] = 0.5
    backoff_max_s: Annotated[float, Field(ge=0, le=3600)] = 30.0
    queue_size: Annotated[int, Field(ge=1, le=100_000)] = 1000

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None:
            _check_url(value)
        return value

    @model_validator(mode="after")
    def _one_url(self) -> _SinkSpec:
        if self.url is not None and self.url_env is not None:
            raise ValueError("give url or url_env, not both")
        if self.url is None and self.url_env is None and self.default_url() is None:
            raise ValueError("url or url_env is required")
        return self

    def default_url(self) -> str | None:
        return None

    def retry(self) -> RetryPolicy:
        return RetryPolicy(
            timeout_s=self.timeout_s,
            max_attempts=self.max_attempts,
            backoff_initial_s=self.backoff_initial_s,
            backoff_max_s=self.backoff_max_s,
        )


class WebhookSpec(_SinkSpec):
    """Generic JSON webhook; `token_env` adds `Authorization: Bearer <value>`."""

    kind: Literal["webhook"]
    token_env: EnvName | None = None


class SlackSpec(_SinkSpec):
    """Slack incoming webhook; its URL is a secret, so prefer `url_env`."""

    kind: Literal["slack"]


class PagerDutySpec(_SinkSpec):
    """PagerDuty Events API v2; the URL defaults to the US service endpoint."""

    kind: Literal["pagerduty"]
    routing_key_env: EnvName
    group: Annotated[str, Field(min_length=1, max_length=200)] = "agentops"

    def default_url(self) -> str | None:
        return PAGERDUTY_EVENTS_URL


class FileSpec(BaseModel):
    """A local JSON-lines file: one `agentops.notice/1` line per notice (the demo's pager,
    or a log shipper's input). A relative path is taken from the watch.toml's directory."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["file"]
    name: SinkName | None = None
    path: Annotated[str, Field(min_length=1, max_length=4096)]
    min_severity: IncidentSeverity = "low"
    max_attempts: Annotated[int, Field(ge=1, le=20)] = 3
    queue_size: Annotated[int, Field(ge=1, le=100_000)] = 1000


AnySinkSpec = WebhookSpec | SlackSpec | PagerDutySpec | FileSpec
SinkSpec = Annotated[AnySinkSpec, Field(discriminator="kind")]
SINK_KINDS = ("webhook", "slack", "pagerduty", "file")


def _check_url(value: str) -> None:
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise ValueError(f"not a URL: {exc}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError("must be an http:// or https:// URL with a host")


def _secret(environ: Mapping[str, str], var: str, what: str, where: str) -> str:
    value = environ.get(var, "")
    if not value.strip():
        raise WatchConfigError(f"{where}: {what}: environment variable {var} is not set")
    return value.strip()


def build_sinks(
    specs: Sequence[AnySinkSpec],
    origin: str,
    environ: Mapping[str, str] | None = None,
) -> list[Sink]:
    """The sinks, secrets read from `environ` (default: the process environment) now, so
    a missing variable stops the watcher at startup instead of at the first page."""
    env = os.environ if environ is None else environ
    sinks: list[Sink] = []
    for index, spec in enumerate(specs, start=1):
        name = spec.name or f"{spec.kind}-{index}"
        where = f"{origin}: sink {name!r}"
        if isinstance(spec, FileSpec):
            sinks.append(_file_sink(name, spec, origin))
            continue
        url = spec.url or spec.default_url()
        if spec.url_env is not None:
            url = _secret(env, spec.url_env, "url_env", where)
            try:
                _check_url(url)
            except ValueError as exc:
                raise WatchConfigError(f"{where}: ${spec.url_env}: {exc}") from None
        assert url is not None  # the spec's validator guarantees one
        headers: dict[str, str] = {}
        render: Callable[[Notice], dict[str, Any]]
        if isinstance(spec, PagerDutySpec):
            key = _secret(env, spec.routing_key_env, "routing_key_env", where)
            group = spec.group

            def render(notice: Notice, key: str = key, group: str = group) -> dict[str, Any]:
                return pagerduty_payload(notice, key, group)

        elif isinstance(spec, SlackSpec):
            render = slack_payload
        else:
            render = webhook_payload
            if spec.token_env is not None:
                token = _secret(env, spec.token_env, "token_env", where)
                headers["Authorization"] = f"Bearer {token}"
        sinks.append(
            Sink(
                name=name,
                kind=spec.kind,
                url=url,
                render=render,
                headers=headers,
                min_severity=spec.min_severity,
                retry=spec.retry(),
                queue_size=spec.queue_size,
            )
        )
    return sinks


def _file_sink(name: str, spec: FileSpec, origin: str) -> Sink:
    path = Path(spec.path).expanduser()
    if not path.is_absolute():
        path = Path(origin).parent / path
    return Sink(
        name=name,
        kind=spec.kind,
        url="",
        render=webhook_payload,
        min_severity=spec.min_severity,
        retry=RetryPolicy(max_attempts=spec.max_attempts),
        queue_size=spec.queue_size,
        path=path,
    )
