"""agentops-console: govern AI agents in production from a terminal."""

__version__ = "0.1.0"
