// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

import {Token} from "./Token.sol";
import {Pool} from "./Pool.sol";

/// @title Creates many pairs per transaction, so a 500-pair deployment is tens of transactions.
/// @notice Deployment-only helper: it creates the quote token, then per call a chunk of base
/// tokens and their pools with liquidity, and mints base tokens to the accounts to fund.
contract Deployer {
    Token public immutable quote;

    event PairCreated(uint256 indexed index, address base, address pool);

    constructor(string memory quoteSymbol) {
        quote = new Token(quoteSymbol, quoteSymbol);
    }

    function createPairs(
        uint256 firstIndex,
        string[] calldata symbols,
        uint256[] calldata baseLiquidity,
        uint256[] calldata quoteLiquidity,
        address[] calldata fundees,
        uint256[] calldata fundBase
    ) external returns (address[] memory pools) {
        require(
            symbols.length == baseLiquidity.length && symbols.length == quoteLiquidity.length
                && symbols.length == fundBase.length,
            "lengths"
        );
        pools = new address[](symbols.length);
        for (uint256 i = 0; i < symbols.length; i++) {
            Token base = new Token(symbols[i], symbols[i]);
            Pool pool = new Pool(address(base), address(quote));
            base.mint(address(this), baseLiquidity[i]);
            quote.mint(address(this), quoteLiquidity[i]);
            base.approve(address(pool), baseLiquidity[i]);
            quote.approve(address(pool), quoteLiquidity[i]);
            if (pool.token0() == address(base)) {
                pool.addLiquidity(baseLiquidity[i], quoteLiquidity[i]);
            } else {
                pool.addLiquidity(quoteLiquidity[i], baseLiquidity[i]);
            }
            for (uint256 j = 0; j < fundees.length; j++) {
                base.mint(fundees[j], fundBase[i]);
            }
            pools[i] = address(pool);
            emit PairCreated(firstIndex + i, address(base), address(pool));
        }
    }
}
