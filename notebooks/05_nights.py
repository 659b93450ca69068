# Databricks notebook source
# MAGIC %md
# MAGIC # 05 · Nights: the run log and time travel across them
# MAGIC `audit/runs` holds one row per night (stages, timings, bytes, checks, model version). Delta's
# MAGIC history lets you read any table as it was after any night.

# COMMAND ----------

from delta.tables import DeltaTable
from pyspark.sql import functions as F

from pricing.nightly import runs_table
from pricing.notebook import notebook_context
from pricing.score import PriceTables

ctx = notebook_context()
spark = ctx.spark
runs = spark.read.format("delta").load(runs_table(ctx.lakehouse))
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

current = PriceTables(ctx.lakehouse).current_prices
history = DeltaTable.forPath(spark, current).history().select("version", "timestamp", "operation")
history.orderBy("version").show(truncate=False)
for version in [r.version for r in history.where("operation = 'MERGE'").orderBy("version").collect()]:
    as_of = spark.read.format("delta").option("versionAsOf", version).load(current)
    dates = sorted({str(r.effective_date) for r in as_of.select("effective_date").distinct().collect()})
    print(f"version {version}: {as_of.count()} SKUs, effective dates {dates}")

# COMMAND ----------

# MAGIC %md ## One SKU's price path across nights

# COMMAND ----------

recommendations = spark.read.format("delta").load(PriceTables(ctx.lakehouse).recommendations)
sku = recommendations.select(F.min("sku")).first()[0]
recommendations.where(F.col("sku") == sku).select(
    "price_date", "current_price", "recommended_price", "final_price", "status", "binding_constraint"
).orderBy("price_date").show(truncate=False)
