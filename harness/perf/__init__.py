"""Side-by-side performance measurements of the bot's parts (docs/PERFORMANCE.md reproduces each row).

- ``python -m harness.perf.transport``: the bot's RPC client against a bare aiohttp + orjson client on
  one anvil, interleaved, sequential and 64 in flight (optionally against an earlier revision).

Each writes its figures with the machine's CPU reference beside them (``harness.probes.calibration``),
because a figure from this 2-core box and one from a machine 2-3x faster are not comparable alone.
"""
