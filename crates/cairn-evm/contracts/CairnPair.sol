// SPDX-License-Identifier: Apache-2.0
// Cairn's own constant-product pool (x * y = k, 0.3 % fee) for synthetic blocks. Written for Cairn: the
// familiar "send tokens in, then call swap" shape, not derived from any third-party source.
pragma solidity 0.8.30;

interface ICairnToken {
    function transfer(address to, uint256 value) external returns (bool);
    function balanceOf(address owner) external view returns (uint256);
}

contract CairnPair {
    address public immutable token0;
    address public immutable token1;
    uint112 private reserve0; // slot 0 (packed with reserve1)
    uint112 private reserve1;

    event Swap(address indexed sender, uint256 amount0In, uint256 amount1In, uint256 amount0Out, uint256 amount1Out, address indexed to);
    event Sync(uint112 reserve0, uint112 reserve1);

    constructor(address a, address b) {
        token0 = a;
        token1 = b;
    }

    function getReserves() external view returns (uint112, uint112) {
        return (reserve0, reserve1);
    }

    /// Takes the pool's token balances as its reserves (after liquidity was sent in).
    function sync() external {
        _update(ICairnToken(token0).balanceOf(address(this)), ICairnToken(token1).balanceOf(address(this)));
    }

    /// Sends the amounts out to `to`, then checks that what was sent in beforehand keeps k (after the fee).
    function swap(uint256 amount0Out, uint256 amount1Out, address to) external {
        require(amount0Out > 0 || amount1Out > 0, "no output");
        (uint256 r0, uint256 r1) = (reserve0, reserve1);
        require(amount0Out < r0 && amount1Out < r1, "liquidity");
        if (amount0Out > 0) require(ICairnToken(token0).transfer(to, amount0Out), "transfer0");
        if (amount1Out > 0) require(ICairnToken(token1).transfer(to, amount1Out), "transfer1");
        uint256 balance0 = ICairnToken(token0).balanceOf(address(this));
        uint256 balance1 = ICairnToken(token1).balanceOf(address(this));
        uint256 amount0In = balance0 > r0 - amount0Out ? balance0 - (r0 - amount0Out) : 0;
        uint256 amount1In = balance1 > r1 - amount1Out ? balance1 - (r1 - amount1Out) : 0;
        require(amount0In > 0 || amount1In > 0, "no input");
        uint256 adjusted0 = balance0 * 1000 - amount0In * 3;
        uint256 adjusted1 = balance1 * 1000 - amount1In * 3;
        require(adjusted0 * adjusted1 >= r0 * r1 * 1000000, "k");
        _update(balance0, balance1);
        emit Swap(msg.sender, amount0In, amount1In, amount0Out, amount1Out, to);
    }

    function _update(uint256 balance0, uint256 balance1) private {
        require(balance0 <= type(uint112).max && balance1 <= type(uint112).max, "overflow");
        reserve0 = uint112(balance0);
        reserve1 = uint112(balance1);
        emit Sync(reserve0, reserve1);
    }
}
