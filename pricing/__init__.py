"""pricing-lakehouse: distributed e-commerce pricing on Spark, Delta Lake, PyTorch and MLflow."""

__version__ = "0.1.0"
