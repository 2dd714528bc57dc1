"""Transaction outcomes that are failures, as exceptions with a counting label.

Independent of ``bot.rpc.errors.RpcError``: an ``RpcError`` says the *network call* failed, a
``TxError`` says what happened to the *transaction* (the node may have answered perfectly well
that the transaction reverted). ``kind`` is the label errors are counted under.
"""

from __future__ import annotations


class TxError(Exception):
    kind = "tx"


class TxReverted(TxError):
    """Mined with status 0: the nonce is consumed and the gas is spent."""

    kind = "reverted"


class TxDropped(TxError):
    """Not mined within its deadline and no longer known to the node."""

    kind = "dropped"


class TxRejected(TxError):
    """The node definitively refused the transaction before accepting it into its pool."""

    kind = "rejected"


class InsufficientFunds(TxRejected):
    kind = "insufficient_funds"


class NonceConflict(TxRejected):
    """The node already holds or has mined another transaction at this nonce."""

    kind = "nonce_conflict"


class TxFailed(TxError):
    """Transport errors were exhausted; whether the node holds the transaction was never learned."""

    kind = "failed"
