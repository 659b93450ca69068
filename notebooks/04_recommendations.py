# Databricks notebook source
# MAGIC %md
# MAGIC # 04 · Tonight's prices and their reasons
# MAGIC `gold/price_recommendations` for the latest night: who decides (auto-approved, review, override),
# MAGIC which guardrail bound each price, the largest moves, and one SKU's demand curve with its band.

# COMMAND ----------

import matplotlib.pyplot as plt
import numpy as np
from pyspark.sql import functions as F

from pricing.decide.stage import whatif
from pricing.lakehouse.tables import PRICE_RECOMMENDATIONS
from pricing.platform.notebook import notebook_context

ctx = notebook_context()
spark = ctx.spark
recommendations = ctx.lakehouse.read(spark, PRICE_RECOMMENDATIONS)
night = recommendations.agg(F.max("price_date")).first()[0]
tonight = recommendations.where(F.col("price_date") == night).cache()
print(f"prices for {night}: {tonight.count()} SKUs")

# COMMAND ----------

# MAGIC %md ## Who decides, and which guardrail bound the price

# COMMAND ----------

tonight.groupBy("status", "binding_constraint").count().orderBy(F.desc("count")).show()
outside = tonight.where(
    "binding_constraint != 'infeasible' AND "
    "(recommended_price < price_floor - 1e-6 OR recommended_price > price_ceiling + 1e-6)"
)
assert outside.count() == 0, "a recommended price left its guardrail band"

# COMMAND ----------

# MAGIC %md ## The largest moves, with the band and the reason

# COMMAND ----------

change = F.col("recommended_price") / F.col("current_price") - 1
tonight.select(
    "sku",
    "current_price",
    "recommended_price",
    "final_price",
    F.round(change * 100, 1).alias("change_pct"),
    "price_floor",
    "price_ceiling",
    "binding_constraint",
    "status",
    "review_reason",
).orderBy(F.desc(F.abs(change))).show(10, truncate=False)

# COMMAND ----------

# MAGIC %md ## One SKU's expected profit curve, the band and the chosen price

# COMMAND ----------

row = tonight.orderBy(F.desc("expected_profit_recommended")).first()
grid = [round(p, 2) for p in np.linspace(row.current_price * 0.6, row.current_price * 1.4, 25)]
curve = whatif(spark, ctx.lakehouse, ctx.cfg, row.sku, grid, price_date=night)
fig, ax = plt.subplots(figsize=(7, 3))
ax.plot(curve["price"], curve["expected_profit"], marker=".")
ax.axvspan(row.price_floor, row.price_ceiling, alpha=0.15, label="guardrail band")
ax.axvline(row.recommended_price, color="k", ls="--", label=f"recommended {row.recommended_price:.2f}")
ax.set(xlabel="price", ylabel="expected profit", title=f"{row.sku} on {night}")
ax.legend()
plt.show()
print(curve.to_string(index=False))
