"""Evaluation only: markets the product was not tuned on, and a judge of any night's prices.

Nothing in the production packages (platform, lakehouse, ingest, features, model, decide, nightly)
imports this package (``tests/integration/test_evaluation.py`` checks it): production code never sees
ground truth. It writes markets through the landing contract and reads what the product wrote (its
Delta tables).
"""
