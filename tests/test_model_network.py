"""The price response is monotone by construction; stock-out days do not teach 'no stock = no demand'."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pricing.model.network import DemandNet, NetSpec, poisson_loss

SPEC = NetSpec(n_skus=5, n_categories=2, n_brands=3, text_dim=4, n_numeric=3, hidden=16)


def _batch(n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    return {
        "sku": torch.randint(0, 6, (n,), generator=generator),
        "category": torch.randint(0, 3, (n,), generator=generator),
        "brand": torch.randint(0, 4, (n,), generator=generator),
        "text": torch.randn(n, 4, generator=generator),
        "numeric": torch.randn(n, 3, generator=generator),
    }


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), low=st.floats(-1.5, 1.0), step=st.floats(0.001, 1.0))
def test_expected_units_never_increase_with_price(seed: int, low: float, step: float) -> None:
    torch.manual_seed(seed)
    net = DemandNet(SPEC)
    with torch.no_grad():  # any weights, including extreme ones
        for parameter in net.parameters():
            parameter.mul_(1 + 4 * torch.rand(()).item())
    batch = _batch(64, torch.Generator().manual_seed(seed))
    cheap, elasticity = net(**batch, log_price_ratio=torch.full((64,), low))
    dear, _ = net(**batch, log_price_ratio=torch.full((64,), low + step))
    assert torch.all(elasticity <= 0)
    assert torch.all(dear <= cheap + 1e-6)
    assert torch.all(torch.exp(dear) > 0)


def _fit_rate(units: torch.Tensor, weight: torch.Tensor) -> float:
    torch.manual_seed(0)
    net = DemandNet(SPEC)
    batch = _batch(len(units), torch.Generator().manual_seed(1))
    batch = {k: torch.zeros_like(v) for k, v in batch.items()}  # one SKU, no features: fit a rate
    optimizer = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(300):
        optimizer.zero_grad()
        log_mean, _ = net(**batch, log_price_ratio=torch.zeros(len(units)))
        poisson_loss(log_mean, units, weight).backward()
        optimizer.step()
    with torch.no_grad():
        return float(torch.exp(net(**batch, log_price_ratio=torch.zeros(len(units)))[0]).mean())


def test_stockout_days_are_masked_not_learned_as_zero_demand() -> None:
    generator = torch.Generator().manual_seed(3)
    demand = torch.poisson(torch.full((2000,), 5.0), generator=generator)
    stockout = torch.rand(2000, generator=generator) < 0.4
    observed = torch.where(stockout, torch.zeros_like(demand), demand)  # censored: sold nothing
    masked = _fit_rate(observed, (~stockout).float())
    unmasked = _fit_rate(observed, torch.ones(2000))
    assert abs(masked - 5.0) < 0.25
    assert unmasked < 3.5


def test_elasticity_reads_only_the_configured_product_inputs() -> None:
    torch.manual_seed(0)
    batch = _batch(32, torch.Generator().manual_seed(1))
    other = {**batch, "brand": (batch["brand"] + 1) % 4, "text": torch.randn(32, 4)}  # same SKUs, categories
    zero = torch.zeros(32)
    pooled = DemandNet(NetSpec(**{**SPEC.to_dict(), "elasticity_inputs": ["category"]}))
    assert torch.equal(pooled(**batch, log_price_ratio=zero)[1], pooled(**other, log_price_ratio=zero)[1])
    # A model saved before the setting existed has no such key: it reads category, brand and text.
    saved = {k: v for k, v in SPEC.to_dict().items() if k != "elasticity_inputs"}
    full = DemandNet(NetSpec(**saved))
    full.load_state_dict(DemandNet(SPEC).state_dict())
    assert not torch.equal(full(**batch, log_price_ratio=zero)[1], full(**other, log_price_ratio=zero)[1])
