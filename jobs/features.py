"""spark-submit entry point for `pricing features`.

    spark-submit --py-files dist/pricing_lakehouse-*.whl jobs/ingest.py --env cluster [options] [key=value ...]

Takes exactly the arguments of `pricing features --help`; all logic lives in the `pricing` package.
"""

from __future__ import annotations

import sys

from pricing.cli import main

if __name__ == "__main__":
    sys.exit(main(["features", *sys.argv[1:]]))
