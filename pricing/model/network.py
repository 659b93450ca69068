"""A demand network whose price response is economically valid by construction.

    log E[units | x, p] = base(x) + elasticity(x) * (log(p / p_ref) - price_offset)
    elasticity(x) = -softplus(head(x)) <= 0

so expected units are positive and never increase with our own price, and every SKU-day has an
elasticity that can be read, plotted and explained. ``price_offset`` is E[log(p / p_ref) | x] when the
price effect is fitted on the price residual (double machine learning), 0 for a naive fit.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class NetSpec:
    """Sizes of the network's inputs and layers (saved with the model)."""

    n_skus: int
    n_categories: int
    n_brands: int
    text_dim: int
    n_numeric: int
    embedding_dim: int = 8
    hidden: int = 64

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class DemandNet(nn.Module):
    """SKU, category and brand embeddings, the text vector and numeric features -> base and elasticity."""

    def __init__(self, spec: NetSpec) -> None:
        super().__init__()
        self.spec = spec
        e = spec.embedding_dim
        # Index 0 is "unknown": a SKU, category or brand the model has not seen (a new product).
        self.sku = nn.Embedding(spec.n_skus + 1, e)
        self.category = nn.Embedding(spec.n_categories + 1, e)
        self.brand = nn.Embedding(spec.n_brands + 1, e)
        width = 3 * e + spec.text_dim + spec.n_numeric
        self.trunk = nn.Sequential(
            nn.Linear(width, spec.hidden), nn.ReLU(), nn.Linear(spec.hidden, spec.hidden), nn.ReLU()
        )
        self.base_head = nn.Linear(spec.hidden, 1)
        self.elasticity_head = nn.Linear(spec.hidden, 1)

    def forward(
        self,
        sku: torch.Tensor,
        category: torch.Tensor,
        brand: torch.Tensor,
        text: torch.Tensor,
        numeric: torch.Tensor,
        log_price_ratio: torch.Tensor,
        price_offset: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (log expected units, elasticity), each of shape (batch,)."""
        hidden = self.trunk(
            torch.cat([self.sku(sku), self.category(category), self.brand(brand), text, numeric], dim=1)
        )
        base = self.base_head(hidden).squeeze(1)
        elasticity = -F.softplus(self.elasticity_head(hidden).squeeze(1))
        treatment = log_price_ratio if price_offset is None else log_price_ratio - price_offset
        return base + elasticity * treatment, elasticity


def poisson_loss(log_mean: torch.Tensor, units: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Weighted Poisson negative log-likelihood (a count loss, not MSE).

    Stock-out days carry weight 0: their sales are censored by stock, and learning from them would
    teach the model that no stock means no demand.
    """
    per_row = F.poisson_nll_loss(log_mean, units, log_input=True, full=False, reduction="none")
    return (per_row * weight).sum() / weight.sum().clamp_min(1.0)
