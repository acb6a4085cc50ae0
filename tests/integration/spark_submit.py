"""Run a spark_jobs/ program exactly as the operator does: spark-submit, local master."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from govops import settings
from govops.spark import jdbc
from govops.spark.package import build_zip

REPO = Path(__file__).resolve().parents[2]


def command(job: str, args: dict[str, object], *, jdbc_url: str | None = None) -> tuple[list[str], dict[str, str]]:
    cmd = ["spark-submit", "--master", "local[2]", "--conf", "spark.ui.enabled=false",
           "--py-files", str(build_zip())]
    env = dict(os.environ)
    if jdbc_url:
        source = jdbc.from_database_url(jdbc_url)
        cmd += ["--jars", ",".join(settings.jdbc_jars())]
        args = {**args, "jdbc-url": source.url, "user": source.user}
        env[jdbc.PASSWORD_ENV] = source.password or ""
    cmd.append(str(REPO / "spark_jobs" / f"{job}.py"))
    for key, value in args.items():
        if value is not None:
            cmd += [f"--{key}", str(value)]
    return cmd, env


def run(job: str, args: dict[str, object], *, jdbc_url: str | None = None) -> subprocess.CompletedProcess[str]:
    cmd, env = command(job, args, jdbc_url=jdbc_url)
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
