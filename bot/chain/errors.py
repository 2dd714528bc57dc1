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


class DevKeyRefused(TxError):
    """A public dev key (anvil's and hardhat's test mnemonic) was asked to sign for a chain other
    than the local dev chain: anyone can sign with that key, so nothing was signed."""

    kind = "dev_key"

    def __init__(self, address: str, chain_id: int, dev_chain_id: int) -> None:
        super().__init__(
            f"accounts: {address} is a public anvil/hardhat dev key (the test mnemonic) and signs only for "
            f"chain id {dev_chain_id}, not {chain_id}; give this chain your own key (accounts.env or "
            "accounts.key_file)"
        )
        self.address = address
        self.chain_id = chain_id
