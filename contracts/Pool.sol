// SPDX-License-Identifier: MIT
pragma solidity 0.8.28;

interface IERC20Min {
    function transfer(address to, uint256 amount) external returns (bool);
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
}

/// @title A constant-product pool with a 0.3% fee and Uniswap-V2-compatible reads.
/// @notice Unlike Uniswap V2, `swap` pulls the input with transferFrom (the caller approves the
/// pool once) so one transaction is one trade, which is what the bot's latency rows time.
contract Pool {
    address public immutable token0;
    address public immutable token1;

    uint112 private reserve0;
    uint112 private reserve1;
    uint32 private blockTimestampLast;

    event Swap(
        address indexed sender,
        uint256 amount0In,
        uint256 amount1In,
        uint256 amount0Out,
        uint256 amount1Out,
        address indexed to
    );
    event Sync(uint112 reserve0, uint112 reserve1);

    constructor(address tokenA, address tokenB) {
        require(tokenA != tokenB && tokenA != address(0) && tokenB != address(0), "tokens");
        // Sorted like Uniswap V2, so readers must call token0() rather than assume base/quote order.
        (token0, token1) = tokenA < tokenB ? (tokenA, tokenB) : (tokenB, tokenA);
    }

    function getReserves() external view returns (uint112, uint112, uint32) {
        return (reserve0, reserve1, blockTimestampLast);
    }

    function addLiquidity(uint256 amount0, uint256 amount1) external {
        require(IERC20Min(token0).transferFrom(msg.sender, address(this), amount0), "transfer0");
        require(IERC20Min(token1).transferFrom(msg.sender, address(this), amount1), "transfer1");
        _update(uint256(reserve0) + amount0, uint256(reserve1) + amount1);
    }

    function swap(uint256 amountIn, bool zeroForOne, uint256 minAmountOut, address to)
        external
        returns (uint256 amountOut)
    {
        require(amountIn > 0, "amountIn");
        (uint256 reserveIn, uint256 reserveOut) =
            zeroForOne ? (uint256(reserve0), uint256(reserve1)) : (uint256(reserve1), uint256(reserve0));
        require(reserveIn > 0 && reserveOut > 0, "liquidity");
        uint256 amountInWithFee = amountIn * 997;
        amountOut = (amountInWithFee * reserveOut) / (reserveIn * 1000 + amountInWithFee);
        require(amountOut >= minAmountOut, "slippage");
        require(amountOut > 0, "output");
        (address tokenIn, address tokenOut) = zeroForOne ? (token0, token1) : (token1, token0);
        require(IERC20Min(tokenIn).transferFrom(msg.sender, address(this), amountIn), "transferIn");
        require(IERC20Min(tokenOut).transfer(to, amountOut), "transferOut");
        if (zeroForOne) {
            _update(reserveIn + amountIn, reserveOut - amountOut);
            emit Swap(msg.sender, amountIn, 0, 0, amountOut, to);
        } else {
            _update(reserveOut - amountOut, reserveIn + amountIn);
            emit Swap(msg.sender, 0, amountIn, amountOut, 0, to);
        }
    }

    function _update(uint256 balance0, uint256 balance1) private {
        require(balance0 <= type(uint112).max && balance1 <= type(uint112).max, "overflow");
        reserve0 = uint112(balance0);
        reserve1 = uint112(balance1);
        blockTimestampLast = uint32(block.timestamp);
        emit Sync(reserve0, reserve1);
    }
}
