"""Pulling traces from where they already live (tracing backends) into trace files."""
