"""The bot sharded across processes (``engine.processes = N`` or ``bot run --shards N``).

A parent process splits the selected pairs and the accounts across N child bots (``plan``), starts and
stops them (``parent``), relays the market-data feed to them (``relay``) and serves the one public control
API in front of them (``gateway``, which reaches each child through a ``links.ShardLink``), merging what
they report (``merge``: telemetry, ledger, drains; ``metrics``: the Prometheus exposition). Each child is
an ordinary bot whose config has a ``[shard]`` table.

Public entry point: ``bot.shard.parent.run_sharded``. A single-process bot imports only ``plan`` (pure).
"""
