"""A demand network whose price response is economically valid by construction.

    log E[units | x, p] = base(x) + elasticity(x) * (log(p / p_ref) - price_offset)
    elasticity(x) = -softplus(head(x)) <= 0

so expected units are positive and never increase with our own price, and every SKU-day has an
elasticity that can be read, plotted and explained. A naive fit learns ``base(x)`` with
``price_offset = 0``. The debiased fit (double machine learning, residual-on-residual) replaces both by
cross-fitted nuisances: ``base_offset = log E[units | x]`` and ``price_offset = E[log(p / p_ref) | x]``,
so the elasticity is learned only from how demand moves away from its expected level when the price
moves away from its expected level, never from what drives both (markdowns on weak days).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

# What a product's elasticity can be read from (``train.elasticity_inputs``), in input order.
ELASTICITY_INPUTS = ("category", "brand", "text")


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
    # What the elasticity is read from besides the per-SKU random effect (models saved before this
    # field existed read it from all three).
    elasticity_inputs: list[str] = field(default_factory=lambda: list(ELASTICITY_INPUTS))
    # Positions of the day-of-week one-hot columns in the numeric input. When given, each SKU gets a
    # weekly profile of its own in the base (a random effect), so a SKU whose price follows its own
    # weak weekdays cannot have that weekly pattern read as price response. Empty: no such profile
    # (models saved before this field existed).
    weekday_columns: list[int] = field(default_factory=list)
    # The elasticity a product has before its prices say anything (the prior's centre): the head and the
    # SKU deviations are learned around it, and every regulariser pulls towards it. 0 for models saved
    # before it existed, whose centre was the untrained head's, -softplus(0) = -0.69.
    elasticity_prior: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class DemandNet(nn.Module):
    """SKU, category and brand embeddings, the text vector and numeric features -> base; what the
    product is (``spec.elasticity_inputs`` of category, brand, text) -> elasticity."""

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
        # The elasticity is a property of the product, not of the day: it is read from what the product
        # is (category, brand, text), pooled across similar products, plus a per-SKU deviation that
        # starts at 0 and is pulled towards 0 (a random effect): only a SKU's own price variation can
        # move it, so SKUs with little price history borrow strength from similar ones.
        # Only inputs many SKUs share belong here: an input unique to each SKU (a title's text vector)
        # lets the head fit every SKU's own deviation without the random effect's prior.
        widths = {"category": e, "brand": e, "text": spec.text_dim}
        self.elasticity_inputs = [name for name in ELASTICITY_INPUTS if name in spec.elasticity_inputs]
        self.elasticity_head = nn.Sequential(
            nn.Linear(sum(widths[n] for n in self.elasticity_inputs), spec.hidden // 2),
            nn.ReLU(),
            nn.Linear(spec.hidden // 2, 1),
        )
        self.sku_elasticity = nn.Embedding(spec.n_skus + 1, 1)
        nn.init.zeros_(self.sku_elasticity.weight)
        # softplus^-1(-prior): the head's output that gives the prior elasticity.
        prior = -spec.elasticity_prior
        self.prior_argument = math.log(math.expm1(prior)) if prior > 0 else 0.0
        self.weekday_columns = list(spec.weekday_columns)
        if self.weekday_columns:
            self.sku_weekday = nn.Embedding((spec.n_skus + 1) * 7, 1)
            nn.init.zeros_(self.sku_weekday.weight)

    def forward(
        self,
        sku: torch.Tensor,
        category: torch.Tensor,
        brand: torch.Tensor,
        text: torch.Tensor,
        numeric: torch.Tensor,
        log_price_ratio: torch.Tensor,
        price_offset: torch.Tensor | None = None,
        base_offset: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (log expected units, elasticity), each of shape (batch,)."""
        kind = {"category": self.category(category), "brand": self.brand(brand), "text": text}
        if base_offset is None:
            base = self.base_head(
                self.trunk(torch.cat([self.sku(sku), *kind.values(), numeric], dim=1))
            ).squeeze(1)
            if self.weekday_columns:
                # The one-hot columns are standardised, but their argmax is still the day.
                dow = numeric[:, self.weekday_columns].argmax(dim=1)
                base = base + self.sku_weekday(sku * 7 + dow).squeeze(1)
        else:
            base = base_offset
        head_input = torch.cat([kind[n] for n in self.elasticity_inputs], dim=1)
        elasticity = -F.softplus(
            self.prior_argument
            + self.elasticity_head(head_input).squeeze(1)
            + self.sku_elasticity(sku).squeeze(1)
        )
        treatment = log_price_ratio if price_offset is None else log_price_ratio - price_offset
        return base + elasticity * treatment, elasticity


def elasticity_slope(elasticity: torch.Tensor) -> torch.Tensor:
    """|d elasticity / d u| for the SKU deviation u inside the softplus: sigmoid(z) = 1 - exp(elasticity)."""
    return 1 - torch.exp(elasticity)


def sku_elasticity_penalty(model: DemandNet) -> torch.Tensor:
    """Sum of squared per-SKU elasticity deviations (the random effect's Gaussian prior)."""
    return (model.sku_elasticity.weight**2).sum()


def sku_weekday_penalty(model: DemandNet) -> torch.Tensor:
    """Sum of squared per-SKU weekday effects (their Gaussian prior); 0 without them."""
    if not model.weekday_columns:
        return torch.zeros((), device=model.sku_elasticity.weight.device)
    return (model.sku_weekday.weight**2).sum()


def poisson_loss(
    log_mean: torch.Tensor,
    units: torch.Tensor,
    weight: torch.Tensor,
    censored: torch.Tensor | None = None,
) -> torch.Tensor:
    """Weighted Poisson negative log-likelihood (a count loss, not MSE), censored where stock ran out.

    A stock-out day's sales are a lower bound of its demand: where ``censored`` is set, the row adds
    ``-log P(Y >= units)`` instead. Dropping those days (weight 0) would keep only the days whose
    demand stock could meet, which after a deep discount are the weak ones, and flatten the price
    response; reading them as demand would teach "no stock = no demand". A censored row with 0 units
    says nothing (``P(Y >= 0) = 1``).
    """
    per_row = F.poisson_nll_loss(log_mean, units, log_input=True, full=False, reduction="none")
    if censored is not None:
        mean = torch.exp(log_mean.clamp(max=30.0))
        # P(Y >= k) for Poisson(mean) is the regularised lower incomplete gamma P(k, mean).
        survival = torch.special.gammainc(units.clamp_min(1.0), mean)
        per_row = torch.where(censored > 0, -torch.log(survival.clamp_min(1e-30)), per_row)
        weight = torch.where((censored > 0) & (units <= 0), torch.zeros_like(weight), weight)
    return (per_row * weight).sum() / weight.sum().clamp_min(1.0)


class Ensemble(nn.Module):
    """K demand networks trained together (one allreduce per step) on bootstrap weights."""

    def __init__(self, spec: NetSpec, members: int, debias: bool = False) -> None:
        super().__init__()
        self.members = nn.ModuleList([DemandNet(spec) for _ in range(members)])
        # The SKU deviations' prior sd the members were last trained under, where fit_ensemble
        # estimated it (None: the configured one).
        self.sku_elasticity_sd: float | None = None
        if debias:
            # The debiased fit takes its base from the demand nuisance: the members' own trunk and base
            # head stay out of training (and out of the allreduce).
            for member in self.members:
                assert isinstance(member, DemandNet)
                unused = [
                    getattr(member, n) for n in ("category", "brand") if n not in member.elasticity_inputs
                ] + ([member.sku_weekday] if member.weekday_columns else [])
                for part in (member.sku, member.trunk, member.base_head, *unused):
                    part.requires_grad_(False)

    def forward(
        self,
        batch: dict[str, torch.Tensor],
        offset: torch.Tensor | None,
        base: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = [
            m(
                **net_inputs(batch),
                log_price_ratio=batch["log_price_ratio"],
                price_offset=offset,
                base_offset=base,
            )
            for m in self.members
        ]
        return torch.stack([o[0] for o in outputs]), torch.stack([o[1] for o in outputs])


class Nuisance(nn.Module):
    """The cross-fitted nuisances of double ML, two folds each (fold f is fitted on fold f's rows).

    ``price``: E[log(p/p_ref) | x] (squared error); ``demand``: log E[units | x] (Poisson), both
    without the day's own price.
    """

    def __init__(self, spec: NetSpec) -> None:
        super().__init__()
        self.price = nn.ModuleList([DemandNet(spec) for _ in range(2)])
        self.demand = nn.ModuleList([DemandNet(spec) for _ in range(2)])

    def forward(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(price, demand) predictions of each fold model, each of shape (2, batch)."""
        zero = torch.zeros_like(batch["log_price_ratio"])
        # A DemandNet at log_price_ratio = 0 is just its base(x): reuse it as the regression head.
        price = torch.stack([m(**net_inputs(batch), log_price_ratio=zero)[0] for m in self.price])
        demand = torch.stack([m(**net_inputs(batch), log_price_ratio=zero)[0] for m in self.demand])
        return price, demand


def net_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The batch's inputs a :class:`DemandNet` takes besides the price."""
    return {k: batch[k] for k in ("sku", "category", "brand", "text", "numeric")}
