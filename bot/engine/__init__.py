"""The bot's concurrency core: one actor per trading pair, bounded everywhere.

Modules (import from them directly; this package re-exports nothing, to keep imports acyclic):

- ``mailbox``: ``Mailbox`` (bounded, priorities RISK_EXIT > CANCEL > ENTRY > MARKET_DATA, overflow
  policy per priority, drops counted), ``Message``, ``Priority``, ``PutResult``.
- ``scheduler``: ``FairScheduler``, the pure decision of which waiting pair runs next.
- ``dispatch``: ``FairGate``, at most N pair handlers at once, granted by the scheduler.
- ``limits``: ``CapacityLimiter``, resource pools that remember their holders; the lock order.
- ``supervision``: ``RestartPolicy`` and ``FatalActorError`` (pure).
- ``supervisor``: ``Supervisor``, restarts the bot's background tasks (heads, receipts, feed,
  WebSocket) after a crash, with ``TaskRecord`` as its pure decision logic.
- ``actors``: ``PairActor`` and ``Engine`` (routing, pause/resume, restarts, graceful stop).
- ``watchdog``: event-loop lag and stuck-handler detection, reported into telemetry.
"""
