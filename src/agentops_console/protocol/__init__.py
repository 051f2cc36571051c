"""The agentops/1 wire contract. Import models from `.models` and clients from `.client`.

Nothing is imported here: `protocol.text` is standard library only, and a CLI command that
only cleans text (release check, audit) must not pay for building the pydantic models.
"""
