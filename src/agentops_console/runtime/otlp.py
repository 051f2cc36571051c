"""OTLP/HTTP trace ingest: request bodies (protobuf or JSON, optionally gzip) to GenAISpans.

Everything here reads untrusted bytes, so every failure is an `OTLPError` with a one-line
message and the HTTP status to answer with; nothing else escapes. OTLP/JSON differs from
protobuf's canonical JSON mapping (ids are hex, not base64; enums may be numbers), so the
JSON path walks the document itself rather than going through `json_format`.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Iterable
from typing import Any

from .genai_span import GenAISpan

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
_MAX_DEPTH = 16
_STATUS_ERROR = (2, "STATUS_CODE_ERROR")


class OTLPError(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _inflate(body: bytes, encoding: str, limit: int) -> bytes:
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise OTLPError(f"unsupported Content-Encoding {encoding!r}", 415)
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise OTLPError(f"corrupt {encoding} body: {exc}") from None
    if len(data) > limit or inflater.unconsumed_tail:
        raise OTLPError(f"decompressed body exceeds {limit} bytes", 413)
    return data


def decode_request(
    body: bytes, content_type: str, content_encoding: str = "", limit: int = 4 << 20
) -> list[GenAISpan]:
    """The spans in one ExportTraceServiceRequest body."""
    media = _media_type(content_type)
    data = _inflate(body, content_encoding, limit)
    if media == PROTOBUF:
        return _from_protobuf(data)
    if media == JSON:
        return _from_json(data)
    raise OTLPError(
        f"unsupported Content-Type {media or '(none)'!r}: use {PROTOBUF} or {JSON}", 415
    )


def encode_response(content_type: str, rejected: int) -> tuple[bytes, str]:
    """An ExportTraceServiceResponse in the request's own encoding."""
    if _media_type(content_type) == PROTOBUF:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceResponse,
        )

        response = ExportTraceServiceResponse()
        if rejected:
            response.partial_success.rejected_spans = rejected
            response.partial_success.error_message = "spans without required fields"
        return response.SerializeToString(), PROTOBUF
    payload: dict[str, Any] = {}
    if rejected:
        payload["partialSuccess"] = {
            "rejectedSpans": str(rejected),
            "errorMessage": "spans without required fields",
        }
    return json.dumps(payload).encode(), JSON


# -- protobuf ---------------------------------------------------------------------------


def _from_protobuf(data: bytes) -> list[GenAISpan]:
    from google.protobuf.message import DecodeError
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )

    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(data)
    except (DecodeError, RecursionError, ValueError) as exc:
        raise OTLPError(f"malformed OTLP protobuf: {exc}") from None
    spans: list[GenAISpan] = []
    append = spans.append
    error_code = _STATUS_ERROR[0]
    for resource_spans in request.resource_spans:
        resource = _pb_attributes(resource_spans.resource.attributes)
        service = resource.get("service.name")
        if not isinstance(service, str):
            service = None
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                status = span.status
                # positional, one read per field: this runs for every span of the body
                append(
                    GenAISpan(
                        span.trace_id.hex(),
                        span.span_id.hex(),
                        span.parent_span_id.hex() or None,
                        span.name,
                        span.start_time_unix_nano,
                        span.end_time_unix_nano or None,
                        _pb_attributes(span.attributes),
                        (status.message or "error") if status.code == error_code else None,
                        service,
                    )
                )
    return spans


def _pb_attributes(pairs: Iterable[Any]) -> dict[str, Any]:
    """KeyValues to a dict; the scalar kinds are read inline (no call per attribute)."""
    result: dict[str, Any] = {}
    for pair in pairs:
        value = pair.value
        kind = value.WhichOneof("value")
        if kind == "string_value":
            result[pair.key] = value.string_value
        elif kind == "int_value":
            result[pair.key] = value.int_value
        else:
            result[pair.key] = _pb_value(value, 0, kind)
    return result


def _pb_value(value: Any, depth: int, kind: str | None = "") -> Any:
    if depth > _MAX_DEPTH:
        return None
    if kind == "":
        kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_pb_value(v, depth + 1) for v in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _pb_value(kv.value, depth + 1) for kv in value.kvlist_value.values}
    if kind == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, kind)


# -- JSON -------------------------------------------------------------------------------


def _from_json(data: bytes) -> list[GenAISpan]:
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise OTLPError(f"malformed OTLP JSON: {exc}") from None
    if not isinstance(document, dict):
        raise OTLPError("OTLP JSON must be an object with resourceSpans")
    spans: list[GenAISpan] = []
    for resource_spans in _list(document, "resourceSpans"):
        resource = _json_attributes(_obj(resource_spans, "resource").get("attributes"))
        service = resource.get("service.name")
        for scope_spans in _list(resource_spans, "scopeSpans"):
            for span in _list(scope_spans, "spans"):
                spans.append(_json_span(span, service if isinstance(service, str) else None))
    return spans


def _obj(parent: Any, key: str) -> dict[str, Any]:
    value = parent.get(key) if isinstance(parent, dict) else None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise OTLPError(f"OTLP JSON: {key} must be an object")
    return value


def _list(parent: Any, key: str) -> list[Any]:
    if not isinstance(parent, dict):
        raise OTLPError(f"OTLP JSON: expected an object holding {key}")
    value = parent.get(key, [])
    if not isinstance(value, list):
        raise OTLPError(f"OTLP JSON: {key} must be a list")
    return value


def _hex_id(span: dict[str, Any], key: str, size: int, required: bool) -> str | None:
    raw = span.get(key)
    if raw in (None, "") and not required:
        return None
    if not isinstance(raw, str):
        raise OTLPError(f"OTLP JSON: span {key} must be a hex string")
    text = raw.lower()
    if len(text) != size * 2 or any(c not in "0123456789abcdef" for c in text):
        raise OTLPError(f"OTLP JSON: span {key} must be {size * 2} hex digits")
    return text


def _nanos(span: dict[str, Any], key: str) -> int | None:
    raw = span.get(key)
    if raw in (None, "", 0, "0"):
        return None
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise OTLPError(f"OTLP JSON: span {key} must be an integer") from None
    if value < 0:
        raise OTLPError(f"OTLP JSON: span {key} must not be negative")
    return value


def _json_span(span: Any, service: str | None) -> GenAISpan:
    if not isinstance(span, dict):
        raise OTLPError("OTLP JSON: a span must be an object")
    name = span.get("name", "")
    status = span.get("status") or {}
    if not isinstance(status, dict):
        raise OTLPError("OTLP JSON: span status must be an object")
    message = status.get("message")
    return GenAISpan(
        trace_id=_hex_id(span, "traceId", 16, True) or "",
        span_id=_hex_id(span, "spanId", 8, True) or "",
        parent_span_id=_hex_id(span, "parentSpanId", 8, False),
        name=name if isinstance(name, str) else str(name),
        start_ns=_nanos(span, "startTimeUnixNano") or 0,
        end_ns=_nanos(span, "endTimeUnixNano"),
        attributes=_json_attributes(span.get("attributes")),
        error=(message if isinstance(message, str) and message else "error")
        if status.get("code") in _STATUS_ERROR
        else None,
        service_name=service,
    )


def _json_attributes(pairs: Any, depth: int = 0) -> dict[str, Any]:
    if pairs is None:
        return {}
    if not isinstance(pairs, list):
        raise OTLPError("OTLP JSON: attributes must be a list")
    result: dict[str, Any] = {}
    for pair in pairs:
        if not isinstance(pair, dict) or not isinstance(pair.get("key"), str):
            raise OTLPError("OTLP JSON: an attribute needs a string key")
        result[pair["key"]] = _json_value(pair.get("value"), depth)
    return result


def _json_value(value: Any, depth: int) -> Any:
    if not isinstance(value, dict) or depth > _MAX_DEPTH:
        return None
    if "stringValue" in value:
        return str(value["stringValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "intValue" in value:
        try:
            return int(value["intValue"])
        except (TypeError, ValueError):
            raise OTLPError("OTLP JSON: intValue must be an integer") from None
    if "doubleValue" in value:
        try:
            return float(value["doubleValue"])
        except (TypeError, ValueError):
            raise OTLPError("OTLP JSON: doubleValue must be a number") from None
    if "arrayValue" in value:
        items = (
            value["arrayValue"].get("values", []) if isinstance(value["arrayValue"], dict) else []
        )
        if not isinstance(items, list):
            raise OTLPError("OTLP JSON: arrayValue.values must be a list")
        return [_json_value(v, depth + 1) for v in items]
    if "kvlistValue" in value:
        kv = value["kvlistValue"]
        return _json_attributes(kv.get("values") if isinstance(kv, dict) else None, depth + 1)
    if "bytesValue" in value:
        return str(value["bytesValue"])
    return None
