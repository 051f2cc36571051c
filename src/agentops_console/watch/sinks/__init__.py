"""Notification sinks: what a page says (`Notice`), how each service wants it
(`payloads`), where it goes (`spec`) and how it gets there (`delivery`)."""

from .delivery import Notifier, SinkCounters
from .notice import Notice
from .spec import SinkSpec, build_sinks

__all__ = ["Notice", "Notifier", "SinkCounters", "SinkSpec", "build_sinks"]
