"""The intake stage: landing files -> bronze -> silver, with quarantine, a file ledger and reconciliation.

- :mod:`~pricing.ingest.landing`: finding and reading the landing contract's files;
- :mod:`~pricing.ingest.rules`: each source's cleaning rules, declared as data;
- :mod:`~pricing.ingest.silver`: applying them (pure DataFrame functions);
- :mod:`~pricing.ingest.stage`: ``run_ingest``, the stage (bronze, silver, quarantine, ledger, audit).
"""

from pricing.ingest.stage import (
    IngestError,
    IngestReport,
    ReconciliationError,
    latest_batch_id,
    run_ingest,
    stale_sources,
)

__all__ = [
    "IngestError",
    "IngestReport",
    "ReconciliationError",
    "latest_batch_id",
    "run_ingest",
    "stale_sources",
]
