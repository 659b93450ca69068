"""spark-submit entry point for `pricing nightly`, the job users schedule.

    spark-submit --master spark://HOST:7077 --py-files dist/pricing.zip $(pricing spark-conf --env cluster) \\
        jobs/nightly.py --env cluster --landing DIR --lakehouse DIR --run-date YYYY-MM-DD [key=value ...]

Takes exactly the arguments of `pricing nightly --help`; all logic lives in the `pricing` package.
Exit status: 0 done (or already done), 1 failed, 2 bad configuration, 3 another run holds the lock.
"""

from __future__ import annotations

import sys

from pricing.cli import main

if __name__ == "__main__":
    sys.exit(main(["nightly", *sys.argv[1:]]))
