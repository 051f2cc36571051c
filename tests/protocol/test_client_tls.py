"""The clients' SSL contexts: an http:// endpoint loads no CA bundle (~0.15 s idle, over 1 s
on a loaded box, per client: most of a watcher's start-up) and an https:// one loads it once
per process. SSL_CERT_FILE pointing nowhere makes every CA-bundle load fail, so a client that
can still be built did not load one."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agentops_console.protocol.client import (
    AgentClient,
    AsyncAgentClient,
    EndpointError,
    tls_for,
)


def _no_ca_bundle(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "no-such-bundle.pem"))


def test_an_http_endpoint_loads_no_ca_bundle(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _no_ca_bundle(monkeypatch, tmp_path)
    AgentClient("http://127.0.0.1:9", None).close()

    async def build() -> None:
        for _ in range(3):
            await AsyncAgentClient("http://127.0.0.1:9", "t").aclose()

    asyncio.run(build())


def test_https_endpoints_share_one_ca_bundle_load(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    AgentClient("https://agent.example:8443", None).close()  # loads it (or it was loaded)
    _no_ca_bundle(monkeypatch, tmp_path)

    async def build() -> None:
        for _ in range(3):
            await AsyncAgentClient("https://agent.example:8443", "t").aclose()

    asyncio.run(build())
    AgentClient("HTTPS://agent.example:8443", None).close()


def test_an_http_client_still_refuses_tls_it_cannot_verify() -> None:
    """The shared context of http:// URLs trusts nothing: TLS through it fails closed."""
    context = tls_for("http://127.0.0.1:9")
    assert context.verify_mode.name == "CERT_REQUIRED" and context.check_hostname
    assert context.cert_store_stats()["x509_ca"] == 0
    assert tls_for("http://a:1") is context  # built once
    with pytest.raises(EndpointError):  # nothing listens: still a clean one-line error
        with AgentClient("http://127.0.0.1:9", None) as client:
            client.health()
