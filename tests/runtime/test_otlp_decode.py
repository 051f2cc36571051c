"""OTLP/HTTP body decoding: what the stock SDK encoder sends, OTLP/JSON, and garbage."""

from __future__ import annotations

import contextlib
import gzip
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from agentops_console.runtime.otlp import OTLPError, decode_request, encode_response

PB = "application/x-protobuf"


def _sdk_spans() -> list:  # type: ignore[type-arg]
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "it-support"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("invoke_agent it-support") as agent:
        agent.set_attribute("gen_ai.operation.name", "invoke_agent")
        agent.set_attribute("gen_ai.conversation.id", "conv-1")
        with tracer.start_as_current_span("execute_tool kb_search") as tool:
            tool.set_attribute("gen_ai.operation.name", "execute_tool")
            tool.set_attribute("gen_ai.tool.name", "kb_search")
            tool.set_attribute("gen_ai.usage.input_tokens", 12)
            tool.set_attribute("score", 0.5)
            tool.set_attribute("tags", ["a", "b"])
            tool.set_status(Status(StatusCode.ERROR, "tool failed"))
    provider.shutdown()
    return list(exporter.get_finished_spans())


def test_protobuf_from_the_sdk_encoder_round_trips() -> None:
    sdk = _sdk_spans()
    body = encode_spans(sdk).SerializeToString()
    spans = decode_request(body, PB)
    by_name = {s.name: s for s in spans}
    tool = by_name["execute_tool kb_search"]
    agent = by_name["invoke_agent it-support"]
    assert tool.parent_span_id == agent.span_id
    assert agent.parent_span_id is None
    assert tool.trace_id == format(sdk[0].context.trace_id, "032x")
    assert tool.attributes["gen_ai.usage.input_tokens"] == 12
    assert tool.attributes["score"] == 0.5
    assert tool.attributes["tags"] == ["a", "b"]
    assert tool.error == "tool failed"
    assert agent.error is None
    assert tool.service_name == "it-support"
    assert tool.operation == "execute_tool"
    assert tool.end_ns is not None and tool.end_ns >= tool.start_ns > 0


def test_gzip_protobuf_is_inflated() -> None:
    body = gzip.compress(encode_spans(_sdk_spans()).SerializeToString())
    assert len(decode_request(body, PB, "gzip")) == 2


def test_decompression_bomb_is_refused() -> None:
    bomb = gzip.compress(b"\0" * 2_000_000)
    with pytest.raises(OTLPError) as err:
        decode_request(bomb, PB, "gzip", limit=100_000)
    assert err.value.status == 413


def _json_doc(**span_overrides: object) -> bytes:
    span = {
        "traceId": "5B8EFFF798038103D269B633813FC60C",
        "spanId": "EEE19B7EC3C1B174",
        "parentSpanId": "",
        "name": "chat gpt-4o-mini",
        "startTimeUnixNano": "1544712660000000000",
        "endTimeUnixNano": "1544712661000000000",
        "kind": 3,
        "attributes": [
            {"key": "gen_ai.operation.name", "value": {"stringValue": "chat"}},
            {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "1200"}},
            {"key": "ok", "value": {"boolValue": True}},
            {"key": "ratio", "value": {"doubleValue": 0.25}},
            {
                "key": "nested",
                "value": {
                    "kvlistValue": {
                        "values": [
                            {"key": "k", "value": {"arrayValue": {"values": [{"intValue": 1}]}}}
                        ]
                    }
                },
            },
        ],
        "status": {"code": "STATUS_CODE_ERROR", "message": "rate limited"},
    }
    span.update(span_overrides)
    doc = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]
                },
                "scopeSpans": [{"scope": {"name": "x"}, "spans": [span]}],
            }
        ]
    }
    return json.dumps(doc).encode()


def test_otlp_json_uses_hex_ids_and_string_ints() -> None:
    (span,) = decode_request(_json_doc(), "application/json; charset=utf-8")
    assert span.trace_id == "5b8efff798038103d269b633813fc60c"
    assert span.span_id == "eee19b7ec3c1b174"
    assert span.parent_span_id is None
    assert span.attributes["gen_ai.usage.input_tokens"] == 1200
    assert span.attributes["ok"] is True
    assert span.attributes["ratio"] == 0.25
    assert span.attributes["nested"] == {"k": [1]}
    assert span.error == "rate limited"
    assert span.service_name == "svc"
    assert span.start_ns == 1544712660000000000


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (b'{"resourceSpans": 7}', "application/json", 400),
        (_json_doc(traceId="xyz"), "application/json", 400),
        (_json_doc(startTimeUnixNano="soon"), "application/json", 400),
        (b"\xff\xfe\x00garbage", PB, 400),
        (b"{}", "text/plain", 415),
    ],
)
def test_bad_bodies_are_one_line_errors(body: bytes, content_type: str, status: int) -> None:
    with pytest.raises(OTLPError) as err:
        decode_request(body, content_type)
    assert err.value.status == status
    assert "\n" not in str(err.value)


def test_responses_follow_the_request_encoding() -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceResponse,
    )

    payload, media = encode_response(PB, 2)
    assert media == PB
    response = ExportTraceServiceResponse.FromString(payload)
    assert response.partial_success.rejected_spans == 2
    payload, media = encode_response("application/json", 0)
    assert (media, json.loads(payload)) == ("application/json", {})


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=512))
def test_any_bytes_decode_or_raise_otlp_error(body: bytes) -> None:
    for content_type in (PB, "application/json"):
        try:
            spans = decode_request(body, content_type)
        except OTLPError:
            continue
        assert isinstance(spans, list)


@settings(max_examples=300, deadline=None)
@given(_json_values)
def test_any_json_document_decodes_or_raises_otlp_error(document: object) -> None:
    wrapped = {"resourceSpans": [{"scopeSpans": [{"spans": [document]}]}]}
    for doc in (document, wrapped):
        with contextlib.suppress(OTLPError):
            decode_request(json.dumps(doc).encode(), "application/json")
