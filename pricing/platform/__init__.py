"""What every stage runs on: the SparkSession (``spark.py``), the lakehouse lock (``lock.py``), the
console and logging (``console.py``), MLflow's store (``tracking.py``), a local standalone cluster
(``standalone.py``), a notebook's start (``notebook.py``) and self-contained HTML pages (``pages.py``).

The package imports none of its modules: each is imported where it is used.
"""
