"""The chain the harness runs against, and the network between it and the bot.

- ``anvil``: the anvil binary as a managed child (free port, mining mode, no orphans);
  ``endpoint``: a user's own node instead (``start_node`` picks either).
- ``compile`` / ``abi``: the Solidity artifacts (contracts/build) and encoding on top of them.
- ``deployplan`` (pure) / ``deploy``: the market of N pairs and the funded, approved bot accounts.
- ``keys``: the standard dev accounts. ``jsonrpc``: the harness's own small JSON-RPC client.
- ``faultplan`` (pure) / ``faultproxy``: latency and faults injected between bot and node;
  ``faultschedule`` (pure: plans changed at run time), ``faultshapes`` (pure: wrong reply shapes),
  ``faulttext`` (pure: the plan's value grammar), ``faultnet`` (pure: ``--network`` profiles),
  ``faultbody`` (spoiled replies on the wire), ``faultlog`` (what was injected), ``faultcontrol``
  (the proxy's control API).
"""
