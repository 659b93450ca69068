"""spark-submit entry point for `pricing score`.

    spark-submit --py-files dist/pricing_lakehouse-0.1.0-py3-none-any.whl \
        jobs/score.py --env cluster [options] [key=value ...]

Takes exactly the arguments of `pricing score --help`; all logic lives in the `pricing` package.
"""

from __future__ import annotations

import sys

from pricing.cli import main

if __name__ == "__main__":
    sys.exit(main(["score", *sys.argv[1:]]))
