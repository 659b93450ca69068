"""Predictions from a trained ensemble: expected units at any price, elasticity and its interval.

The same code serves the Spark evaluation (``mapInPandas``, model loaded once per task), the MLflow
pyfunc model and, later, price scoring.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any, TypeVar

import mlflow
import numpy as np
import pandas as pd
import torch

from pricing.model.dataset import InputSpec
from pricing.model.network import Ensemble, NetSpec, Nuisance

PREDICTION_COLUMNS = ["expected_units", "elasticity", "elasticity_low", "elasticity_high"]
# Interval bounds: torch tensors here, numpy arrays in the benches.
T = TypeVar("T", torch.Tensor, np.ndarray)


def stretch_interval(low: T, high: T, factor: float) -> tuple[T, T]:
    """An elasticity interval (bounds at or below 0) stretched by ``factor``, towards what the held-out
    price moves say: ``[min(low, factor low), max(high, factor high)]``, more elastic above 1, less
    below; never narrower."""
    return low * max(1.0, factor), high * min(1.0, factor)


class LoadedModel:
    """An ensemble and its nuisances, ready to predict on model-input frames.

    ``config`` is the model's ``config.json``: ``net``, ``ensemble_size``, ``debias`` and, from models
    that have them, ``elasticity_interval`` and ``interval_level``.
    """

    def __init__(self, state: bytes, config: dict[str, Any]) -> None:
        spec = NetSpec(**config["net"])
        weights = torch.load(io.BytesIO(state), map_location="cpu", weights_only=True)
        self.debias = bool(config["debias"])
        self.ensemble = Ensemble(spec, int(config["ensemble_size"]), self.debias)
        self.ensemble.load_state_dict(weights["ensemble"])
        self.nuisance = Nuisance(spec)
        self.nuisance.load_state_dict(weights["nuisance"])
        # Models saved before the Laplace interval existed carry no per-SKU sd: they keep the ensemble's.
        laplace = config.get("elasticity_interval") == "laplace"
        self.u_sd: torch.Tensor | None = weights.get("elasticity_u_sd") if laplace else None
        # Models saved before the category's own uncertainty was measured carry none.
        self.category_sd: torch.Tensor | None = weights.get("elasticity_category_sd") if laplace else None
        # The SKU deviations' prior sd (models saved before it was stored pass the category's whole
        # uncertainty to every SKU).
        prior_sd = weights.get("elasticity_sku_prior_sd") if laplace else None
        self.sku_prior_sd: float | None = float(prior_sd[0]) if prior_sd is not None else None
        # Models trained with train.text_components see each title's vector through this projection.
        self.text_basis: torch.Tensor | None = weights.get("text_basis")
        # The holdout's price response slope where training found it clear of 1 (train.interval_stretch_z).
        self.stretch = float(config.get("interval_stretch", 1.0))
        # The elasticity level the system's own price tests called for where they contradicted the
        # history's (model.train.own_test_level): every member's softplus argument shifted, each SKU's
        # curve pivoting at its recent usual price; the shift's uncertainty is shared by every SKU.
        self.level_shift = float(config.get("elasticity_level_shift", 0.0))
        self.level_shift_sd = float(config.get("elasticity_level_shift_sd", 0.0))
        pivot = config.get("elasticity_level_pivot")
        self.level_pivot = torch.tensor(pivot, dtype=torch.float32) if pivot else None
        level = float(config.get("interval_level", 0.9))
        self.z = float(torch.distributions.Normal(0.0, 1.0).icdf(torch.tensor(0.5 + level / 2)))
        self.ensemble.eval()
        self.nuisance.eval()

    def _forward(self, frame: pd.DataFrame) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor]:
        """The frame's tensors and every member's log expected units and elasticity per row."""
        batch = _tensors(frame)
        if self.text_basis is not None:
            batch["text"] = batch["text"] @ self.text_basis
        offset = base = None
        if self.debias:
            # For any row, each nuisance is the average of its two cross-fitted folds.
            price, demand = self.nuisance(batch)
            offset, base = price.mean(0), demand.mean(0)
        log_mean, elasticity = self.ensemble(batch, offset, base)
        if self.level_shift:
            shifted = -torch.nn.functional.softplus(softplus_argument(elasticity) + self.level_shift).float()
            pivot = self.level_pivot[batch["sku"]] if self.level_pivot is not None else 0.0
            log_mean = log_mean + (shifted - elasticity) * (batch["log_price_ratio"] - pivot)
            elasticity = shifted
        return batch, log_mean, elasticity

    @torch.no_grad()
    def members(self, frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Every member's log expected units and elasticity per row, shape (members, rows)."""
        _, log_mean, elasticity = self._forward(frame)
        return log_mean.double().numpy(), elasticity.double().numpy()

    @torch.no_grad()
    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        batch, log_mean, elasticity = self._forward(frame)
        per_member_units = torch.exp(log_mean)
        mean = elasticity.mean(0)
        if self.u_sd is None:
            low, high = elasticity.min(0).values, elasticity.max(0).values
        else:
            # The posterior is Gaussian in the softplus's argument (elasticity = -softplus(arg)),
            # so its quantiles map exactly through the monotone softplus: the interval is wider on
            # the elastic side and never above 0 (a linearisation would squeeze it where the
            # elasticity is small). Each member's posterior variance of the argument, plus the
            # members' disagreement.
            own, shared = self._argument_variances(batch)
            argument = softplus_argument(elasticity)
            centre = argument.mean(0)
            sd = torch.sqrt((own + shared).mean(0) + argument.var(0, unbiased=False) + self.level_shift_sd**2)
            low = torch.minimum(-torch.nn.functional.softplus(centre + self.z * sd).float(), mean)
            high = torch.maximum(-torch.nn.functional.softplus(centre - self.z * sd).float(), mean)
        if self.stretch != 1.0:
            low, high = stretch_interval(low, high, self.stretch)
        return pd.DataFrame(
            {
                "expected_units": per_member_units.mean(0).numpy().astype(np.float64),
                "elasticity": mean.numpy().astype(np.float64),
                "elasticity_low": low.numpy().astype(np.float64),
                "elasticity_high": high.numpy().astype(np.float64),
            },
            index=frame.index,
        )

    def _argument_variances(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Each member's posterior variance of the softplus argument per row, in two parts: the SKU's
        own deviation's and the share of its category's uncertainty that it borrows (zero where the
        model carries no category sd), which every SKU of the category shares."""
        assert self.u_sd is not None
        own = self.u_sd[:, batch["sku"]] ** 2
        if self.category_sd is None:
            return own, torch.zeros_like(own)
        # A SKU's own prices pin its elasticity, category and all: of the category's uncertainty only
        # the share its estimate borrows from the category reaches it, u_sd² / prior_sd²
        # (normal-normal model; 1 for a SKU whose prices never moved).
        borrowed = own / self.sku_prior_sd**2 if self.sku_prior_sd else torch.ones_like(own)
        return own, (borrowed * self.category_sd[:, batch["category"]]) ** 2

    @torch.no_grad()
    def interval_parts(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The elasticity interval's posterior in the softplus argument, per row: its centre, the sd
        of the part independent from SKU to SKU (the SKU's own deviation and the members'
        disagreement) and the sd of the part shared by every SKU of the category. ``centre ± z
        sqrt(own² + shared²)``, mapped through ``-softplus``, is :meth:`predict`'s interval; the shared
        part is why a market's SKUs are not independent draws. Laplace-interval models only."""
        if self.u_sd is None:
            raise ValueError("interval_parts needs a model trained with train.elasticity_interval=laplace")
        batch, _, elasticity = self._forward(frame)
        argument = softplus_argument(elasticity)
        own, shared = self._argument_variances(batch)
        return pd.DataFrame(
            {
                "centre": argument.mean(0).numpy(),
                "own_sd": torch.sqrt(own.mean(0) + argument.var(0, unbiased=False)).numpy(),
                "shared_sd": torch.sqrt(shared.mean(0) + self.level_shift_sd**2).numpy(),
            },
            index=frame.index,
        )


def softplus_argument(elasticity: torch.Tensor) -> torch.Tensor:
    """The softplus argument of each member's elasticity (elasticity = -softplus(argument))."""
    return torch.log(torch.expm1(-elasticity.double()).clamp_min(1e-12))


def _tensors(frame: pd.DataFrame) -> dict[str, torch.Tensor]:
    return {
        "sku": torch.as_tensor(frame["sku_idx"].to_numpy(np.int64)),
        "category": torch.as_tensor(frame["category_idx"].to_numpy(np.int64)),
        "brand": torch.as_tensor(frame["brand_idx"].to_numpy(np.int64)),
        "numeric": torch.as_tensor(np.stack(frame["numeric"].to_numpy()).astype(np.float32)),
        "text": torch.as_tensor(np.stack(frame["text"].to_numpy()).astype(np.float32)),
        "log_price_ratio": torch.as_tensor(frame["log_price_ratio"].to_numpy(np.float32)),
    }


def predict_batches(model_loader: Any, keep: list[str]) -> Any:
    """A ``mapInPandas`` function: loads the model once per task, predicts each Arrow batch."""

    def predict(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model = model_loader()
        for frame in batches:
            yield pd.concat(
                [frame[keep].reset_index(drop=True), model.predict(frame.reset_index(drop=True))], axis=1
            )

    return predict


class DemandPyfunc(mlflow.pyfunc.PythonModel):  # type: ignore[name-defined]
    """The MLflow model: input = rows of ``pricing.model.dataset.model_inputs``; output = predictions."""

    def load_context(self, context: Any) -> None:
        import json

        with open(context.artifacts["weights"], "rb") as handle:
            state = handle.read()
        with open(context.artifacts["config"]) as handle:
            config = json.load(handle)
        with open(context.artifacts["input_spec"]) as handle:
            self.input_spec = InputSpec.from_json(handle.read())
        self.model = LoadedModel(state, config)

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        return self.model.predict(model_input)


# What the served model imports (the pyfunc class lives in this package, which brings pyspark).
MODEL_PACKAGES = ("pricing-lakehouse", "torch", "numpy", "pandas", "mlflow", "cloudpickle")


def model_requirements() -> list[str]:
    """The logged model's pip requirements, pinned to the versions training ran with.

    Given explicitly because MLflow's inference loads the model in a fresh Python process (about 10 s
    of every training run) and still missed torch. Local version labels (``2.15.0+cu132``) are dropped:
    an index serves the public version. A package not installed as such (``pricing`` shipped with
    ``spark-submit --py-files``) is left out.
    """
    from importlib.metadata import PackageNotFoundError, version

    requirements = []
    for name in MODEL_PACKAGES:
        try:
            requirements.append(f"{name}=={version(name).split('+')[0]}")
        except PackageNotFoundError:
            continue
    return requirements


# The model-version (and training-run) tag naming the lakehouse a model was trained on.
LAKEHOUSE_ID_TAG = "lakehouse_id"


def foreign_model(version: Any, lakehouse: str | None) -> str | None:
    """Why a registered model ``version`` must not price lakehouse ``lakehouse`` (its id), or None.

    A version trained on another lakehouse (its ``lakehouse_id`` tag differs) knows other SKUs and other
    dates; one trained before versions were tagged is taken as this lakehouse's.
    """
    owner = (version.tags or {}).get(LAKEHOUSE_ID_TAG)
    if lakehouse is None or owner is None or owner == lakehouse:
        return None
    return (
        f"{version.name} v{version.version} was trained on another lakehouse ({owner}; "
        f"this one is {lakehouse})"
    )
