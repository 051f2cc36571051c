"""GET /metrics: the runtime's counters in Prometheus text exposition.

prometheus_client renders the format (escaping, HELP/TYPE lines); it is imported on the
first scrape only, so agents that are never scraped never pay for it. The collector reads
the runtime's plain counters at scrape time: nothing is added to the agent's hot path.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .core import Runtime

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _families(runtime: Runtime) -> Iterator[Any]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    stats = runtime.stats
    info = runtime.agent_info()

    agent = GaugeMetricFamily(
        "agentops_agent_info",
        "The agent, its version and the policy version in force.",
        labels=["agent", "version", "tenant", "policy_version"],
    )
    agent.add_metric([info.agent, info.version, info.tenant or "", info.policy.version or ""], 1.0)
    yield agent

    def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
        return GaugeMetricFamily(name, doc, value=value)

    def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
        return CounterMetricFamily(name, doc, value=value)

    yield gauge("agentops_sessions_active", "Sessions running now.", stats.sessions_active)
    yield gauge("agentops_approvals_pending", "Human checkpoints waiting.", stats.approvals_pending)
    yield counter("agentops_sessions", "Sessions started.", stats.sessions_total)
    yield counter("agentops_sessions_evicted", "Finished sessions evicted.", stats.sessions_evicted)
    yield counter(
        "agentops_sessions_killed", "Sessions killed by operators.", stats.sessions_killed_total
    )
    yield counter("agentops_tool_calls", "Tool calls guarded.", stats.tool_calls_total)
    yield counter("agentops_llm_calls", "LLM calls recorded.", stats.llm_calls_total)
    yield counter("agentops_cost_usd", "Estimated spend in USD.", stats.cost_usd_total)
    yield counter("agentops_otel_spans", "OpenTelemetry spans ingested.", stats.otel_spans_total)
    yield counter(
        "agentops_endpoint_errors", "Endpoint failures no response reported.", stats.endpoint_errors
    )
    yield counter(
        "agentops_otel_sessions_evicted",
        "Active OTel sessions ended to stay within otel_sessions_max.",
        stats.otel_sessions_evicted,
    )
    yield counter(
        "agentops_otlp_rejected_spans", "OTLP spans or requests refused.", stats.otlp_rejected_total
    )
    yield counter(
        "agentops_redaction_failures",
        "Values the redact hook raised on (kept as a marker, never raw).",
        runtime.retention.failures,
    )
    exporter = runtime.exporter
    if exporter is not None:
        yield counter("agentops_otel_exported_spans", "Spans exported.", exporter.spans_total)
        yield counter(
            "agentops_otel_export_failures", "Spans the export failed on.", exporter.failures
        )

    endpoint = runtime.endpoint
    yield counter(
        "agentops_endpoint_refused_connections",
        "Connections answered 503 over the connection caps.",
        0 if endpoint is None else endpoint.refused_total,
    )

    tokens = CounterMetricFamily("agentops_tokens", "Tokens by direction.", labels=["direction"])
    tokens.add_metric(["input"], stats.tokens_in_total)
    tokens.add_metric(["output"], stats.tokens_out_total)
    yield tokens

    decisions = CounterMetricFamily(
        "agentops_policy_decisions", "Tool-call policy outcomes.", labels=["decision"]
    )
    for decision, count in sorted(stats.policy_decisions.items()):
        decisions.add_metric([decision], count)
    yield decisions

    flags = CounterMetricFamily("agentops_flags", "Detections raised.", labels=["kind"])
    for kind, count in sorted(stats.flags.items()):
        flags.add_metric([kind], count)
    yield flags

    disabled = GaugeMetricFamily(
        "agentops_workflow_disabled", "1 while a workflow is disabled.", labels=["workflow"]
    )
    for state in info.disabled_workflows:
        disabled.add_metric([state.workflow], 1.0)
    yield disabled

    yield gauge("agentops_event_seq", "Last event sequence number.", runtime.events.last_seq)


def render(runtime: Runtime) -> bytes:
    from prometheus_client import CollectorRegistry, generate_latest

    class _Collector:
        def collect(self) -> Iterator[Any]:
            return _families(runtime)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector())
    return generate_latest(registry)
