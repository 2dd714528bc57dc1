"""The reference asyncio trading bot: the system under test."""

__version__ = "0.1.0"
