# Databricks notebook source
# MAGIC %md
# MAGIC # 05 · Nights: the run log and time travel across them
# MAGIC `audit/runs` holds one row per night (stages, timings, bytes, checks, model version). Delta's
# MAGIC history lets you read any table as it was after any night.

# COMMAND ----------

from pyspark.sql import functions as F

from pricing.lakehouse.tables import CURRENT_PRICES, PRICE_RECOMMENDATIONS, RUNS
from pricing.platform.notebook import notebook_context

ctx = notebook_context()
spark = ctx.spark
lakehouse = ctx.lakehouse
runs = lakehouse.read(spark, RUNS)
runs.select(
    "run_date", "price_date", "status", "attempt", "model_version", "retrained", "skus_priced", "seconds"
).orderBy("run_date").show(truncate=False)
assert runs.where("status = 'succeeded'").count() >= 1

# COMMAND ----------

# MAGIC %md ## Stages per night: time, rows written, bytes read and written

# COMMAND ----------

stages = runs.select("run_date", F.explode("stages").alias("stage")).select("run_date", "stage.*")
stages.orderBy("run_date", "stage").show(50, truncate=False)
runs.select("run_date", F.explode("checks").alias("check")).select("run_date", "check.*").show(truncate=False)

# COMMAND ----------

# MAGIC %md ## Time travel: the prices in force after each version of `gold/current_prices`

# COMMAND ----------

history = lakehouse.history(spark, CURRENT_PRICES).select("version", "timestamp", "operation")
history.orderBy("version").show(truncate=False)
for version in [r.version for r in history.where("operation = 'MERGE'").orderBy("version").collect()]:
    as_of = lakehouse.read(spark, CURRENT_PRICES, version=version)
    dates = sorted({str(r.effective_date) for r in as_of.select("effective_date").distinct().collect()})
    print(f"version {version}: {as_of.count()} SKUs, effective dates {dates}")

# COMMAND ----------

# MAGIC %md ## One SKU's price path across nights

# COMMAND ----------

recommendations = lakehouse.read(spark, PRICE_RECOMMENDATIONS)
sku = recommendations.select(F.min("sku")).first()[0]
recommendations.where(F.col("sku") == sku).select(
    "price_date", "current_price", "recommended_price", "final_price", "status", "binding_constraint"
).orderBy("price_date").show(truncate=False)
