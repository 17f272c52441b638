// SPDX-License-Identifier: Apache-2.0
// Cairn's own router over CairnPair pools: exact-input swaps along one or two pools. Written for Cairn.
pragma solidity 0.8.30;

interface IToken {
    function transferFrom(address from, address to, uint256 value) external returns (bool);
}

interface IPair {
    function token0() external view returns (address);
    function token1() external view returns (address);
    function getReserves() external view returns (uint112, uint112);
    function swap(uint256 amount0Out, uint256 amount1Out, address to) external;
}

contract CairnRouter {
    function getAmountOut(uint256 amountIn, uint256 reserveIn, uint256 reserveOut) public pure returns (uint256) {
        require(amountIn > 0 && reserveIn > 0 && reserveOut > 0, "amounts");
        uint256 withFee = amountIn * 997;
        return (withFee * reserveOut) / (reserveIn * 1000 + withFee);
    }

    /// Swaps `amountIn` of `tokenIn` through `pair` and sends the output to `to`.
    function swap1(uint256 amountIn, uint256 minOut, address pair, address tokenIn, address to) external returns (uint256 out) {
        require(IToken(tokenIn).transferFrom(msg.sender, pair, amountIn), "pull");
        (out,) = _hop(pair, tokenIn, amountIn, to);
        require(out >= minOut, "slippage");
    }

    /// Swaps `amountIn` of `tokenIn` through `pairA`, then the output through `pairB`, to `to`.
    function swap2(uint256 amountIn, uint256 minOut, address pairA, address pairB, address tokenIn, address to) external returns (uint256 out) {
        require(IToken(tokenIn).transferFrom(msg.sender, pairA, amountIn), "pull");
        (uint256 mid, address tokenMid) = _hop(pairA, tokenIn, amountIn, pairB);
        (out,) = _hop(pairB, tokenMid, mid, to);
        require(out >= minOut, "slippage");
    }

    function _hop(address pair, address tokenIn, uint256 amountIn, address to) private returns (uint256 out, address tokenOut) {
        address t0 = IPair(pair).token0();
        (uint112 r0, uint112 r1) = IPair(pair).getReserves();
        if (tokenIn == t0) {
            out = getAmountOut(amountIn, r0, r1);
            tokenOut = IPair(pair).token1();
            IPair(pair).swap(0, out, to);
        } else {
            out = getAmountOut(amountIn, r1, r0);
            tokenOut = t0;
            IPair(pair).swap(out, 0, to);
        }
    }
}
