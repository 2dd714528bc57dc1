"""The performance harness: load, measure, judge and report against the SLO tables."""

__version__ = "0.1.0"
