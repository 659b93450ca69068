"""spark-submit entry point for `pricing listings match` (competitor listings -> our SKUs).

    spark-submit --py-files dist/pricing_lakehouse-0.1.0-py3-none-any.whl \
        jobs/match.py --env cluster [--lakehouse DIR] [key=value ...]

Takes exactly the arguments of `pricing listings match --help`; all logic lives in the `pricing` package.
"""

from __future__ import annotations

import sys

from pricing.cli import main

if __name__ == "__main__":
    sys.exit(main(["listings", "match", *sys.argv[1:]]))
