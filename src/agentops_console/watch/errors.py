"""The one error a broken watch.toml raises: its text is the whole one-line message."""

from __future__ import annotations


class WatchConfigError(ValueError):
    """`<file>:<line>: <what is wrong>`; the watcher does not start with it."""
