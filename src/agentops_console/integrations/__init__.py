"""Enforcement for agent frameworks whose telemetry cannot stop a tool.

Each module imports its framework, so import it only when you use that framework (the
`langchain` and `openai-agents` extras install them); `agentops_console.runtime` never
imports any of them. pydantic-ai needs no module here: its `execute_tool` span starts
before the tool runs, so `rt.span_processor()` enforces there (examples/pydantic_ai_agent.py).
"""
