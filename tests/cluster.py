"""A Spark standalone cluster started from the pinned pyspark wheel itself: one master and
two one-core workers on 127.0.0.1, for the tests that run the jobs on a real cluster.

The workers and their executors run in a mount namespace of their own where the checkout
(``plugins/``, ``include/``, ``spark_jobs/``, ``dags/``, GOVOPS_HOME, …) is hidden under
empty directories; only the virtualenv stays visible, as Python and its libraries installed
on a cluster's nodes would. An executor can then import ``govops`` only from the
``--py-files`` zip, and read no file that only exists on the driver's machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pyspark

from govops import settings
from tests.servers import free_port

SPARK_HOME = Path(pyspark.__file__).resolve().parent


def can_hide_checkout() -> bool:
    """Whether this machine lets us make a mount namespace (root, or user namespaces)."""
    if not shutil.which("unshare"):
        return False
    return subprocess.run(["unshare", "--map-root-user", "--mount", "true"], capture_output=True).returncode == 0


def hidden_paths() -> list[Path]:
    """What the executors must not see: every folder of the checkout but the virtualenv,
    and GOVOPS_HOME wherever it is."""
    repo, venv = settings.repo_root(), Path(os.environ.get("VIRTUAL_ENV") or settings.repo_root() / ".venv")
    found = [p for p in repo.iterdir() if p.is_dir() and p.resolve() != venv.resolve()]
    home = settings.home()
    if home.is_dir() and not home.is_relative_to(repo):
        found.append(home)
    return sorted(found)


@dataclass
class Node:
    name: str
    process: subprocess.Popen
    webui: int

    def state(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.webui}/json", timeout=5) as response:
            return json.load(response)


@dataclass
class Cluster:
    url: str
    master: Node
    workers: list[Node]
    worker_dirs: list[Path]
    hidden: list[Path] = field(default_factory=list)

    def applications(self) -> dict[str, dict]:
        """The master's applications by id, running and completed."""
        state = self.master.state()
        return {a["id"]: a for a in state["activeapps"] + state["completedapps"]}

    def executors(self) -> dict[str, list[str]]:
        """Application id -> the workers (by their web UI port) its executors ran on."""
        found: dict[str, list[str]] = {}
        for worker in self.workers:
            state = worker.state()
            for executor in state["executors"] + state["finishedexecutors"]:
                found.setdefault(executor["appid"], []).append(worker.name)
        return found

    def pids(self) -> list[int]:
        """Every live process of the cluster: the daemons, their executors and Python workers
        (each daemon leads a session of its own). Zombies are dead already: not counted."""
        sessions = ",".join(str(n.process.pid) for n in [self.master, *self.workers])
        out = subprocess.run(["ps", "-o", "pid=,stat=", "-s", sessions], capture_output=True, text=True).stdout
        return [int(pid) for pid, stat in (line.split() for line in out.splitlines()) if not stat.startswith("Z")]


def _wait(what: str, check, timeout: float, logs: list[Path]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.5)
    tails = "\n".join(f"--- {p}\n{p.read_text(errors='replace')[-3000:]}" for p in logs if p.exists())
    raise TimeoutError(f"Spark standalone: {what} not within {timeout:.0f} s\n{tails}")


def start(base: Path, workers: int = 2, *, hide_checkout: bool = True) -> Cluster:
    """Start a master and ``workers`` one-core, 1 GB workers; return once all registered."""
    spark_class = str(SPARK_HOME / "bin" / "spark-class")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SPARK_CONF_DIR")}
    env.update(SPARK_HOME=str(SPARK_HOME), SPARK_LOCAL_IP="127.0.0.1", SPARK_NO_DAEMONIZE="1")
    port, webui = free_port(), free_port()
    url = f"spark://127.0.0.1:{port}"
    logs: list[Path] = []

    def launch(name: str, args: list[str], own_env: dict[str, str], hide: list[Path]) -> subprocess.Popen:
        log = base / f"{name}.log"
        logs.append(log)
        command = [spark_class, *args]
        if hide:
            # Empty tmpfs folders over the checkout, in this process's own mount namespace only.
            mounts = " && ".join(f"mount -t tmpfs -o size=1m,mode=755 govops-hidden '{p}'" for p in hide)
            command = ["unshare", "--map-root-user", "--mount", "sh", "-c", f'{mounts} && exec "$@"', "sh", *command]
        with log.open("w") as out:
            return subprocess.Popen(command, env=own_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    args = ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port), "--webui-port",
            str(webui)]  # fmt: skip
    master = Node("master", launch("master", args, env, []), webui)
    nodes, dirs = [], []
    hidden = hidden_paths() if hide_checkout else []
    try:
        _wait("the master", lambda: master.state()["status"] == "ALIVE", 60, logs)
        for i in range(workers):
            folder = base / f"worker-{i}"
            (folder / "local").mkdir(parents=True)
            (folder / "work").mkdir()
            own = {**env, "SPARK_LOCAL_DIRS": str(folder / "local"), "SPARK_WORKER_DIR": str(folder / "work")}
            ui = free_port()
            args = ["org.apache.spark.deploy.worker.Worker", url, "--cores", "1", "--memory", "1g",
                    "--host", "127.0.0.1", "--webui-port", str(ui), "--work-dir", str(folder / "work")]  # fmt: skip
            nodes.append(Node(f"worker-{i}", launch(f"worker-{i}", args, own, hidden), ui))
            dirs.append(folder / "work")
        _wait(f"{workers} workers registered",
              lambda: sum(w["state"] == "ALIVE" for w in master.state()["workers"]) == workers, 90, logs)  # fmt: skip
    except BaseException:
        stop(Cluster(url, master, nodes, dirs))
        raise
    return Cluster(url, master, nodes, dirs, hidden)


def stop(cluster: Cluster, timeout: float = 20) -> None:
    """Terminate the workers (they kill their executors), then the master; kill what is left."""
    for node in [*cluster.workers, cluster.master]:
        if node.process.poll() is None:
            os.killpg(node.process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for node in [*cluster.workers, cluster.master]:
        with contextlib.suppress(subprocess.TimeoutExpired):
            node.process.wait(max(0.1, deadline - time.monotonic()))
    for pid in cluster.pids():
        os.kill(pid, signal.SIGKILL)
    for node in [*cluster.workers, cluster.master]:
        node.process.wait(5)
