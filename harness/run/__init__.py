"""Orchestration of a run: the chain, the bot process, the scenarios, the probes, the verdicts."""
