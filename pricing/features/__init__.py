"""Silver -> gold: the SKU x day panel the demand model and the optimizer read.

- :mod:`~pricing.features.panel`: the pure transforms (each source's daily aggregates, the panel);
- :mod:`~pricing.features.rows`: ``feature_rows``, the one builder of a model's rows from the panel;
- :mod:`~pricing.features.stage`: ``run_features``, the incremental stage that writes the panel (and
  ``gold/text_embeddings`` through :mod:`pricing.text`, which competitor matching reads too).
"""

from pricing.features.panel import (
    DailyInputs,
    build_panel,
    catalog_attributes,
    daily_clicks,
    daily_competition,
    daily_sales,
    daily_spine,
    daily_stock,
    history_features,
    price_changes,
    with_promotion_spells,
)
from pricing.features.rows import TRAFFIC_LAGS, feature_rows
from pricing.features.stage import FeatureReport, read_sku_day, run_features

__all__ = [
    "TRAFFIC_LAGS",
    "DailyInputs",
    "FeatureReport",
    "build_panel",
    "catalog_attributes",
    "daily_clicks",
    "daily_competition",
    "daily_sales",
    "daily_spine",
    "daily_stock",
    "feature_rows",
    "history_features",
    "price_changes",
    "read_sku_day",
    "run_features",
    "with_promotion_spells",
]
