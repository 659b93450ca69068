"""`pricing nightly`: one night of the pipeline (:mod:`~pricing.nightly.job`), whether it retrains
(:mod:`~pricing.nightly.retrain`) and the report of every night (:mod:`~pricing.nightly.report`).

The package imports none of its modules: each is imported where it is used.
"""
