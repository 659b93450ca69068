# Databricks notebook source
# MAGIC %md
# MAGIC # 02 · The gold SKU × day panel
# MAGIC What `pricing features` built: coverage, zero-demand and stock-out days, competitor index, and the
# MAGIC incremental runs recorded in `audit/feature_runs`. Set `LAKEHOUSE` (default: the demo's).

# COMMAND ----------

from pyspark.sql import functions as F

from pricing.lakehouse.tables import FEATURE_RUNS, SKU_DAY
from pricing.platform.notebook import notebook_context

ctx = notebook_context()
spark = ctx.spark
lakehouse = ctx.lakehouse
panel = lakehouse.read(spark, SKU_DAY)

# COMMAND ----------

# MAGIC %md ## Coverage: one row per SKU and day, zero-demand days included

# COMMAND ----------

panel.agg(
    F.countDistinct("sku").alias("skus"),
    F.min("date").alias("first_day"),
    F.max("date").alias("last_day"),
    F.count("*").alias("rows"),
    F.avg((F.col("units_sold") == 0).cast("double")).alias("share_zero_demand_days"),
    F.avg(F.col("stockout").cast("double")).alias("share_stockout_days"),
).show()

# COMMAND ----------

# MAGIC %md ## Price against demand, and our price index against competitors, by category

# COMMAND ----------

panel.groupBy("category").agg(
    F.avg("units_sold").alias("units_per_day"),
    F.avg("discount_depth").alias("avg_discount"),
    F.avg("comp_price_index").alias("price_index_vs_competitors"),
    F.corr(F.log("price"), F.log1p("units_gross")).alias("corr_log_price_log_units"),
).orderBy("category").show(truncate=False)

# COMMAND ----------

# MAGIC %md ## One SKU's history

# COMMAND ----------

sku = panel.select("sku").orderBy("sku").first()[0]
panel.where(F.col("sku") == sku).orderBy("date").select(
    "date",
    "units_sold",
    "price",
    "list_price",
    "comp_median_price",
    "on_hand",
    "stockout",
    "units_lag_7",
    "units_mean_28d",
).show(20)

# COMMAND ----------

# MAGIC %md ## Incremental runs

# COMMAND ----------

lakehouse.read(spark, FEATURE_RUNS).orderBy("finished_at").show(truncate=False)
