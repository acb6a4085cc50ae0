"""PySpark's Python worker daemon, importing pyspark from the installed package.

Spark puts ``$SPARK_HOME/python/lib/pyspark.zip`` first on its Python workers' path. The
zip holds sources only, so every daemon and worker compiles pyspark again: half a second
per job. With pip's pyspark, SPARK_HOME is the installed package, the same release,
compiled once into its ``__pycache__``. Used in local mode only (govops.spark.job), where
the executors run where this package is installed.
"""

from __future__ import annotations

import sys


def main() -> None:
    zips = [p for p in sys.path if p.endswith(".zip") and "pyspark" in p.rsplit("/", 1)[-1]]
    sys.path[:] = [p for p in sys.path if p not in zips] + zips
    from pyspark import daemon

    daemon.manager()


if __name__ == "__main__":
    main()
