"""A runtime's endpoint on loopback for tests: started on port 0, stopped afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from agentops_console.runtime import Runtime


def url_of(rt: Runtime) -> str:
    """The endpoint's URL of a runtime whose endpoint runs."""
    url = rt.url
    assert url is not None, "the runtime's endpoint is not running"
    return url


@contextmanager
def serving(runtime: Runtime) -> Iterator[Runtime]:
    """`runtime` with its endpoint on 127.0.0.1, an ephemeral port; stopped on exit."""
    runtime.start(host="127.0.0.1", port=0)
    try:
        yield runtime
    finally:
        runtime.stop()
