"""The chain layer: accounts, nonces, fees, transactions, signing, sending and receipts.

``TxSender`` (sender.py) is the entry point; it composes a ``Signer``, a ``NonceManager``, a
``ReceiptTracker`` and a ``FeeOracle`` over any ``bot.rpc.protocol.RpcClient``. Decisions are
pure and tested without a network: nonces.py, fees.py, ledger.py, lifecycle.py (one
transaction's states, from signature to outcome), receipts.HeadCursor.
"""
