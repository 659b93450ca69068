# Databricks notebook source
# MAGIC %md
# MAGIC # 01 · Intake: landing files, bronze, silver, quarantine, reconciliation
# MAGIC Explores what `pricing ingest` wrote. Set `LAKEHOUSE` to your lakehouse root (the demo writes
# MAGIC `demo/lakehouse`). Only imports `pricing`; on Databricks `spark` already exists.

# COMMAND ----------

from pyspark.sql import functions as F

from pricing.lakehouse import tables
from pricing.platform.notebook import notebook_context
from pricing.schemas import SOURCES

ctx = notebook_context()
spark = ctx.spark
lakehouse = ctx.lakehouse

# COMMAND ----------

# MAGIC %md ## Reconciliation: rows read = silver + quarantined + duplicates, per source and batch

# COMMAND ----------

reconciliation = lakehouse.read(spark, tables.RECONCILIATION)
reconciliation.orderBy("_batch_id", "source").show(truncate=False)
assert reconciliation.where("not balanced").count() == 0

# COMMAND ----------

# MAGIC %md ## Files: what was ingested, what failed and why

# COMMAND ----------

files = lakehouse.read(spark, tables.INGESTED_FILES)
files.groupBy("source", "status").agg(F.count("*").alias("files"), F.sum("rows_read").alias("rows")).show()
files.where("status = 'failed'").select("source", "path", "error").show(truncate=100)

# COMMAND ----------

# MAGIC %md ## Quarantine by reason, with examples

# COMMAND ----------

quarantine = lakehouse.read(spark, tables.QUARANTINE)
quarantine.groupBy("source", "reason").count().orderBy("source", F.desc("count")).show(truncate=False)
quarantine.select("source", "reason", "detail", "raw_record").show(10, truncate=80)

# COMMAND ----------

# MAGIC %md ## Silver tables: sizes and a sample

# COMMAND ----------

for name in SOURCES:
    silver = lakehouse.read_if_exists(spark, tables.SILVER[name])
    rows = silver.count() if silver is not None else "no table (never delivered)"
    print(f"{name:<18} {rows}")
lakehouse.read(spark, tables.SILVER["transactions"]).orderBy("order_ts").show(5)

# COMMAND ----------

# MAGIC %md ## Competitor listings: matched to our SKUs, and the review queue
# MAGIC Competitors that deliver their own ids and titles instead of our SKU (docs/matching.md). Without
# MAGIC such a competitor the match stage is skipped and these tables do not exist.

# COMMAND ----------

if lakehouse.exists(spark, tables.COMPETITOR_MATCHES):
    matches = lakehouse.read(spark, tables.COMPETITOR_MATCHES)
    matches.groupBy("competitor", "method").agg(
        F.count("*").alias("listings"), F.round(F.min("score"), 2).alias("lowest_score")
    ).show()
    queue = lakehouse.read(spark, tables.LISTING_QUARANTINE)
    queue.groupBy(F.regexp_replace("detail", "[0-9.]+", "n").alias("why")).count().orderBy(
        F.desc("count")
    ).show(truncate=False)
    queue.select("competitor_sku", "title", "size", "detail", "best_sku").show(10, truncate=60)
else:
    print("no competitor delivers listings: nothing matched")
