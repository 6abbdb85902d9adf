"""Findings as data: the models every analysis (engine, triage, check) produces and reads.

Knows the store's span filter, nothing of MCP or LLMs."""
