"""A synthetic market with known ground truth, generated with Spark (``pricing simulate``)."""

from pricing.sim.market import MarketSummary, simulate_market

__all__ = ["MarketSummary", "simulate_market"]
