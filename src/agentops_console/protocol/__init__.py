"""The agentops/1 wire contract. Import models from `.models` and clients from `.client`."""

from .models import PROTOCOL_VERSION

__all__ = ["PROTOCOL_VERSION"]
