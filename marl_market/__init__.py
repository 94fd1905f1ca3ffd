"""marl-market: a laboratory for market microstructure and multi-agent reinforcement learning."""

from marl_market.core.book import Order, OrderBook, Trade

__version__ = "0.1.0"

__all__ = ["Order", "OrderBook", "Trade", "__version__"]
