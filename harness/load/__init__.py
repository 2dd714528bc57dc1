"""Open-loop load: schedules, the generator, the JSON-RPC driver, the market-data feed, Locust.

- ``schedules``: pure arrival schedules (constant, ramp, steps, burst), exact and bounded.
- ``recorder``: per-interval HdrHistograms and counters, and the ``LoadResult`` (pure).
- ``generator``: the open-loop generator (launch at the intended time, cap in-flight, drop and
  count beyond it, latency from intended and from actual start, its own lag).
- ``closedloop``: a closed-loop driver, only to show what coordinated omission hides.
- ``jsonrpc``: ``run_jsonrpc_load`` against any JSON-RPC URL (loopback unless allowed).
- ``ticks`` / ``feed``: the market-data WebSocket feed that drives the bot.
- ``locust_runner`` (+ ``locustfile``, never imported here: gevent): Locust against the bot's API.
- ``capacity``: the benchmark of these tools (``python -m harness.load.capacity``).
"""
