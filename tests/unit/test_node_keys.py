"""The hard-coded dev keys are the standard test mnemonic's, and never show in a repr."""

from __future__ import annotations

import pytest
from eth_account import Account

from harness.node.keys import DERIVATION_PATH, DEV_ADDRESSES, DEV_PRIVATE_KEYS, TEST_MNEMONIC, dev_accounts


def test_keys_and_addresses_rederive_from_the_mnemonic() -> None:
    Account.enable_unaudited_hdwallet_features()
    for i, (key, address) in enumerate(zip(DEV_PRIVATE_KEYS, DEV_ADDRESSES, strict=True)):
        derived = Account.from_mnemonic(TEST_MNEMONIC, account_path=DERIVATION_PATH.format(index=i))
        assert derived.key.hex().removeprefix("0x") == key.removeprefix("0x")
        assert derived.address == address  # checksummed


def test_repr_hides_the_key() -> None:
    for account in dev_accounts():
        assert account.private_key.removeprefix("0x") not in repr(account)
        assert account.address in repr(account)


def test_count_is_bounded() -> None:
    assert [a.index for a in dev_accounts(3)] == [0, 1, 2]
    with pytest.raises(ValueError, match=r"1\.\.10"):
        dev_accounts(11)
