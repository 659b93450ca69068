# Databricks notebook source
# MAGIC %md
# MAGIC # 03 · The demand model and its elasticities
# MAGIC The registered versions in MLflow (which one is champion, and on what evidence), and every SKU's
# MAGIC price elasticity with its interval from `gold/elasticities`. Point `PRICING_OVERRIDES` at your
# MAGIC MLflow store when it is not the lakehouse's own (`<lakehouse>/_mlflow`, the default).

# COMMAND ----------

import matplotlib.pyplot as plt
import mlflow
import pandas as pd

from pricing.lakehouse.tables import ELASTICITIES
from pricing.platform.notebook import notebook_context

ctx = notebook_context()
spark, tcfg = ctx.spark, ctx.cfg.train
mlflow.set_tracking_uri(tcfg.tracking_uri)
client = mlflow.MlflowClient()

# COMMAND ----------

# MAGIC %md ## Registered versions: the gate promotes a version only if it beats the champion's holdout WAPE

# COMMAND ----------

rows = []
for found in client.search_model_versions(f"name = '{tcfg.model_name}'"):
    # search results leave aliases out; the version itself has them
    version = client.get_model_version(tcfg.model_name, found.version)
    run = client.get_run(version.run_id)
    rows.append(
        {
            "version": int(version.version),
            "aliases": ",".join(version.aliases),
            "holdout_wape": run.data.metrics.get("holdout_wape"),
            "seasonal_naive_wape": run.data.metrics.get("seasonal_naive_wape"),
            "data_through": run.data.tags.get("panel_end"),
            "nightly_run": run.data.tags.get("nightly_run_id"),
            "why": run.data.tags.get("retrain_reason"),
        }
    )
versions = pd.DataFrame(rows).sort_values("version")
print(versions.to_string(index=False))
assert versions["aliases"].str.contains("champion").sum() == 1

# COMMAND ----------

# MAGIC %md ## Elasticities: one per SKU, never positive, with the ensemble's interval

# COMMAND ----------

elasticities = (ctx.lakehouse.read(spark, ELASTICITIES).toPandas()).sort_values("elasticity")
assert (elasticities["elasticity"] <= 0).all()
fig, ax = plt.subplots(figsize=(9, 3))
ax.errorbar(
    range(len(elasticities)),
    elasticities["elasticity"],
    yerr=[
        elasticities["elasticity"] - elasticities["elasticity_low"],
        elasticities["elasticity_high"] - elasticities["elasticity"],
    ],
    fmt="o",
    ms=3,
)
ax.set(xlabel="SKU (sorted)", ylabel="elasticity", title="Estimated price elasticity per SKU")
plt.show()
elasticities.describe()
