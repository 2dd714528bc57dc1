"""Market reads from chain state: pair prices from pool reserves, native and ERC-20 balances."""
