"""Archive and restore of dataset partitions (item 21, 历史数据归档及销毁), resumable and exactly once.

**What moves.** A dataset is a Parquet folder in the lake with Hive-style partitions,
``<lake>/<zone>/<dataset>/<column>=<value>/…``. Its retention policy
(:mod:`govops.security.retention`) says which partitions are due: :func:`plan` lists them,
with every file, its size and its rows (from the Parquet footers, nothing else is read), so a
dry run shows exactly what would move. Files are reached through ``pyarrow.fs``
(``FileSystem.from_uri``): the lake and the archive may be ``file://`` or ``hdfs://``.

**Archive** of one partition: the files are copied, several in parallel, into a hidden
staging folder next to the archived partition (``.govops-staging/``, which readers skip),
each file's SHA-256 computed in the same streaming pass and its rows read from the source
footer. The manifest ``_ARCHIVE_MANIFEST.json`` (relative path, bytes, sha256, rows of each
file) is written into the staging folder, which is then renamed into place. The copy is
verified (every archived file read back: same set of files, bytes, sha256 and footer rows,
and the live partition unchanged since it was copied), and only then is the live partition
removed. **Restore** is the same move backwards: the archived files are copied back into the
live zone, checked against the manifest in the same pass, verified, and the archived copy is
removed. A restore never overwrites a live partition: one that exists with other content is
refused (``RESTORE_CONFLICT``); one with exactly the archived content is taken as restored.

**Resumable state machine.** Each partition of a run has a row in
``govops.security_archive_operation`` (kind, dataset, partition, dag_id, run_id) whose
``state`` advances ``planned → copied → verified → removed`` (archive) or ``→ restored``
(restore), each step committed before the next starts. A run killed anywhere and run again
finishes the work from the files and that row: a staging folder left by a killed copy is
cleared and copied again; an archived copy already in place is checked against the live
data; a removal cut short is completed. Data is never lost, because a source is removed only
after its copy verified. A new run that finds another run's unfinished operation of the
same kind on a partition takes it over (the other row becomes ``superseded`` and is never
metered); an unfinished operation of another kind is refused (``OPERATION_PENDING``: re-run
that run first). A partition is worked on by one task at a time (a PostgreSQL advisory lock).

**Audit and metering.** The step that finishes a partition also appends an entry to the
tamper-evident audit log (:mod:`govops.security.audit`: dataset, partition, rows, files,
bytes, the manifest's digest; never values) in the same transaction. :func:`meter_run`
records one usage event per run: item 21, unit ``record``, the rows of the partitions the
run archived (or destroyed); a restore meters nothing. The plan of a run is fixed by its
first ``prepare`` (the operation rows), so re-runs meter exactly what the first run did.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import Connection, Engine, text

from govops.errors import CodedError
from govops.ledger.usage import TaskRef, UsageEvent, contract_timezone, record_usage
from govops.security import audit
from govops.security.retention import RetentionPolicy

ARCHIVE_MANIFEST = "_ARCHIVE_MANIFEST.json"
STAGING = ".govops-staging"  # hidden: Spark and pyarrow datasets skip names starting with "." or "_"
SERVICE_ITEM = "21"
UNIT = "record"
ACTIONS = ("archive", "restore", "destroy")
FINAL = {"archive": "removed", "restore": "restored", "destroy": "destroyed"}
SUPERSEDED = "superseded"
DONE = frozenset([*FINAL.values(), SUPERSEDED])
PROGRESS = {"planned": 0, "copied": 1, "inventoried": 1, "verified": 2}
# Where a failure can be injected (tests): a kill at any of these is resumed by a re-run.
MOVE_STEPS = ("copying", "staged", "copied", "copied-recorded", "verified", "removing", "removed")
CHUNK = 4 << 20
_LOCK_CLASS = 21  # pg advisory lock class of partition locks (the catalog item)


class ArchiveError(CodedError):
    code = "ARCHIVE_ERROR"


class ArchiveConflict(ArchiveError):
    code = "ARCHIVE_CONFLICT"


class RestoreConflict(ArchiveError):
    code = "RESTORE_CONFLICT"


class OperationPending(ArchiveError):
    code = "OPERATION_PENDING"


class VerificationFailed(ArchiveError):
    code = "ARCHIVE_VERIFY_FAILED"


Hook = Callable[[str], None]


def _no_hook(step: str) -> None:
    return None


@dataclass(frozen=True)
class RunContext:
    """Who does the work: the Airflow run (or a caller's own identity) and its work order."""

    dag_id: str
    run_id: str
    work_order_id: str | None = None
    actor: str = "govops"

    def as_json(self) -> dict[str, Any]:
        return {"dag_id": self.dag_id, "run_id": self.run_id, "work_order_id": self.work_order_id}


# --- file systems ---------------------------------------------------------------------


@dataclass(frozen=True)
class Location:
    """A folder on some pyarrow file system; ``uri`` is for people and records."""

    fs: Any
    path: str
    uri: str

    @classmethod
    def of(cls, uri: str) -> Location:
        from pyarrow import fs as pafs

        try:
            filesystem, path = pafs.FileSystem.from_uri(uri)
        except (ValueError, OSError) as exc:
            raise ArchiveError(f"{uri}: not a file system URI pyarrow can open: {exc}") from None
        return cls(filesystem, path.rstrip("/") or "/", uri.rstrip("/"))

    def child(self, *names: str) -> Location:
        joined = "/".join(n.strip("/") for n in names)
        return Location(self.fs, f"{self.path}/{joined}", f"{self.uri}/{joined}")

    @property
    def parent(self) -> Location:
        return Location(self.fs, self.path.rsplit("/", 1)[0], self.uri.rsplit("/", 1)[0])

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    def exists(self) -> bool:
        from pyarrow import fs as pafs

        return self.fs.get_file_info(self.path).type != pafs.FileType.NotFound

    def delete(self) -> None:
        from pyarrow import fs as pafs

        kind = self.fs.get_file_info(self.path).type
        if kind == pafs.FileType.Directory:
            self.fs.delete_dir(self.path)
        elif kind != pafs.FileType.NotFound:
            self.fs.delete_file(self.path)


@dataclass(frozen=True)
class ListedFile:
    path: str  # relative to the partition folder, "/"-separated
    bytes: int
    mtime_ns: int | None


def list_files(loc: Location) -> list[ListedFile]:
    """Every file under a partition folder (recursively), without the archive manifest."""
    from pyarrow import fs as pafs

    found = loc.fs.get_file_info(pafs.FileSelector(loc.path, recursive=True, allow_not_found=True))
    files = [
        ListedFile(info.path[len(loc.path) + 1 :], info.size, info.mtime_ns)
        for info in found
        if info.type == pafs.FileType.File
    ]
    return sorted((f for f in files if f.path != ARCHIVE_MANIFEST), key=lambda f: f.path)


def list_partitions(loc: Location, column: str) -> list[str]:
    """The partition folders ``<column>=<value>`` directly under a dataset folder, sorted."""
    from pyarrow import fs as pafs

    found = loc.fs.get_file_info(pafs.FileSelector(loc.path, recursive=False, allow_not_found=True))
    prefix = f"{column}="
    names = [i.base_name for i in found if i.type == pafs.FileType.Directory and i.base_name.startswith(prefix)]
    return sorted(names)


def is_parquet(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return name.endswith((".parquet", ".parq")) and not name.startswith(".")


def footer_rows(loc: Location, rel: str) -> int:
    import pyarrow.parquet as pq

    try:
        return int(pq.read_metadata(f"{loc.path}/{rel}", filesystem=loc.fs).num_rows)
    except (OSError, ValueError) as exc:  # ArrowInvalid is a ValueError
        raise ArchiveError(f"{loc.uri}/{rel}: not a readable Parquet file: {exc}") from None


def file_entry(path: str, size: int, sha256: str, rows: int | None) -> dict[str, Any]:
    return {"path": path, "bytes": size, "sha256": sha256, "rows": rows}


def _copy_file(src: Location, dst: Location, rel: str) -> dict[str, Any]:
    """Stream one file, hashing what is read; the rows come from the source's footer."""
    digest, size = hashlib.sha256(), 0
    target = f"{dst.path}/{rel}"
    if "/" in rel:
        dst.fs.create_dir(target.rsplit("/", 1)[0], recursive=True)
    with (
        src.fs.open_input_stream(f"{src.path}/{rel}", compression=None) as fin,
        dst.fs.open_output_stream(target, compression=None) as fout,
    ):
        while chunk := fin.read(CHUNK):
            digest.update(chunk)
            fout.write(chunk)
            size += len(chunk)
    return file_entry(rel, size, digest.hexdigest(), footer_rows(src, rel) if is_parquet(rel) else None)


def _hash_file(loc: Location, rel: str) -> dict[str, Any]:
    digest, size = hashlib.sha256(), 0
    with loc.fs.open_input_stream(f"{loc.path}/{rel}", compression=None) as fin:
        while chunk := fin.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return file_entry(rel, size, digest.hexdigest(), footer_rows(loc, rel) if is_parquet(rel) else None)


def _parallel(work: Callable[[str], dict[str, Any]], rels: Sequence[str], threads: int,
              after_first: Hook | None = None) -> list[dict[str, Any]]:  # fmt: skip
    if not rels:
        return []
    out: list[dict[str, Any]] = []
    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(rels)))) as pool:
        futures = [pool.submit(work, rel) for rel in rels]
        for future in as_completed(futures):
            out.append(future.result())
            if after_first is not None and len(out) == 1:
                after_first("copying")
    return sorted(out, key=lambda e: e["path"])


def copy_files(src: Location, dst: Location, rels: Sequence[str], *, threads: int = 4,
               hook: Hook | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Copy files from one folder to another, sha256 in the same pass; the manifest entries."""
    dst.fs.create_dir(dst.path, recursive=True)
    return _parallel(lambda rel: _copy_file(src, dst, rel), rels, threads, hook)


def hash_files(loc: Location, rels: Sequence[str] | None = None, *, threads: int = 4) -> list[dict[str, Any]]:
    """Manifest entries of files as they are now (every file of the folder by default)."""
    rels = [f.path for f in list_files(loc)] if rels is None else rels
    return _parallel(lambda rel: _hash_file(loc, rel), rels, threads)


def manifest_diff(expected: Sequence[Mapping[str, Any]], got: Sequence[Mapping[str, Any]],
                  keys: Sequence[str] = ("bytes", "sha256", "rows")) -> list[str]:  # fmt: skip
    """What differs between two file lists, one line per file (no content, only names and figures)."""
    want, have = {e["path"]: e for e in expected}, {e["path"]: e for e in got}
    lines = [f"{p}: missing" for p in sorted(set(want) - set(have))]
    lines += [f"{p}: not in the manifest" for p in sorted(set(have) - set(want))]
    for p in sorted(set(want) & set(have)):
        lines += [f"{p}: {k} {have[p][k]} instead of {want[p][k]}" for k in keys if have[p][k] != want[p][k]]
    return lines


def _short(lines: Sequence[str], n: int = 5) -> str:
    return "; ".join(lines[:n]) + (f"; and {len(lines) - n} more" if len(lines) > n else "")


def manifest_digest(files: Sequence[Mapping[str, Any]]) -> str:
    """One checksum of a file list (paths, sizes, sha256, rows), for the audit log."""
    body = json.dumps(sorted(files, key=lambda e: e["path"]), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(body.encode()).hexdigest()


def read_manifest(loc: Location) -> dict[str, Any] | None:
    """The archive manifest of an archived partition, or None when there is none."""
    try:
        with loc.fs.open_input_stream(f"{loc.path}/{ARCHIVE_MANIFEST}", compression=None) as fin:
            raw = fin.read()
    except FileNotFoundError:
        return None
    try:
        manifest = json.loads(raw)
        assert isinstance(manifest, dict) and isinstance(manifest["files"], list)
    except (ValueError, AssertionError, KeyError):
        raise ArchiveError(f"{loc.uri}/{ARCHIVE_MANIFEST}: not a valid archive manifest") from None
    return manifest


def _write_json(loc: Location, name: str, body: Mapping[str, Any]) -> None:
    data = json.dumps(body, ensure_ascii=False, indent=2, sort_keys=True).encode()
    with loc.fs.open_output_stream(f"{loc.path}/{name}", compression=None) as out:
        out.write(data)


# --- plans ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedFile:
    copy: str  # live | archive
    path: str
    bytes: int
    rows: int | None


@dataclass(frozen=True)
class PartitionPlan:
    partition: str  # <column>=<value>
    value: str
    day: date | None
    locations: dict[str, str]  # copy -> URI of the partition folder
    files: tuple[PlannedFile, ...]
    target: str | None  # where it goes (None: destroyed)
    reason: str

    @property
    def rows(self) -> int:
        """The partition's records: those of one copy (the live one, else the archived one)."""
        copy = "live" if "live" in self.locations else "archive"
        return sum(f.rows or 0 for f in self.files if f.copy == copy)

    @property
    def bytes(self) -> int:
        return sum(f.bytes for f in self.files)

    def as_json(self) -> dict[str, Any]:
        files = [{"copy": f.copy, "path": f.path, "bytes": f.bytes, "rows": f.rows} for f in self.files]
        return {"partition": self.partition, "rows": self.rows, "bytes": self.bytes, "files": len(self.files),
                "locations": self.locations, "target": self.target, "reason": self.reason,
                "file_list": files}  # fmt: skip


@dataclass(frozen=True)
class Plan:
    dataset: str
    action: str
    as_of: date
    cutoff: date | None
    partitions: tuple[PartitionPlan, ...]
    kept: tuple[str, ...] = ()  # partitions not due
    skipped: tuple[tuple[str, str], ...] = ()  # (partition, why it was not considered)

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.partitions)

    def as_json(self, *, with_files: bool = True) -> dict[str, Any]:
        parts = [p.as_json() for p in self.partitions]
        if not with_files:
            for p in parts:
                p.pop("file_list")
        return {"dataset": self.dataset, "action": self.action, "as_of": self.as_of.isoformat(),
                "cutoff": self.cutoff.isoformat() if self.cutoff else None, "partitions": parts,
                "totals": {"partitions": len(self.partitions), "rows": self.rows,
                           "files": sum(len(p.files) for p in self.partitions),
                           "bytes": sum(p.bytes for p in self.partitions)},
                "kept": list(self.kept), "skipped": [list(s) for s in self.skipped]}  # fmt: skip

    def describe(self) -> str:
        """The dry run, for people: every partition and every file that would move."""
        totals = self.as_json(with_files=False)["totals"]
        lines = [f"{self.action} {self.dataset} as of {self.as_of}"
                 + (f" (cutoff {self.cutoff})" if self.cutoff else "")
                 + f": {totals['partitions']} partition(s), {totals['rows']:,} rows, {totals['files']} file(s), "
                   f"{totals['bytes']:,} bytes; {len(self.kept)} kept"]  # fmt: skip
        for p in self.partitions:
            where = ", ".join(f"{c} {u}" for c, u in p.locations.items())
            lines.append(f"  {p.partition}: {p.rows:,} rows, {len(p.files)} file(s), {p.bytes:,} bytes; {p.reason}; "
                         f"from {where}" + (f" to {p.target}" if p.target else ""))  # fmt: skip
            lines += [f"    [{f.copy}] {f.path}  {f.bytes:,} bytes" + ("" if f.rows is None else f", {f.rows:,} rows")
                      for f in p.files]  # fmt: skip
        lines += [f"  skipped {name}: {why}" for name, why in self.skipped]
        return "\n".join(lines)


def _value(partition: str) -> str:
    from urllib.parse import unquote

    return unquote(partition.split("=", 1)[1])


def _planned_files(loc: Location, copy: str, listed: Sequence[ListedFile], threads: int) -> list[PlannedFile]:
    def one(f: ListedFile) -> PlannedFile:
        return PlannedFile(copy, f.path, f.bytes, footer_rows(loc, f.path) if is_parquet(f.path) else None)

    with ThreadPoolExecutor(max_workers=max(1, min(threads, len(listed) or 1))) as pool:
        return list(pool.map(one, listed))


def _mtime_day(ns: int) -> date:
    return datetime.fromtimestamp(ns / 1e9, tz=contract_timezone()).date()


def locations(lake_root: str, policy: RetentionPolicy) -> tuple[Location, Location]:
    """The dataset's live folder and its archive folder."""
    return Location.of(policy.live_uri(lake_root)), Location.of(policy.archive_uri(lake_root))


def _check_requested(requested: Sequence[str] | None, present: Sequence[str], where: str,
                     column: str) -> list[str] | None:  # fmt: skip
    if not requested:
        return None
    names = []
    for p in requested:
        name = p if "=" in p else f"{column}={p}"  # a bare value is taken as the partition column's
        if not name.startswith(f"{column}="):
            raise ArchiveError(f"partition {p!r}: the policy partitions by {column!r}")
        if name not in present:
            raise ArchiveError(f"partition {name}: not in {where}")
        names.append(name)
    return sorted(set(names))


def plan(lake_root: str, policy: RetentionPolicy, action: str, *, as_of: date,
         partitions: Sequence[str] | None = None, threads: int = 8) -> Plan:  # fmt: skip
    """What an action would do, file by file (the dry run). Nothing is changed.

    * archive: the live partitions due by the policy (dated, or last written, before
      ``as_of - keep``), or the ``partitions`` given (which must be live);
    * restore: the archived partitions given, or every archived partition;
    * destroy: the archived partitions due by ``destroy_after`` (archived before
      ``as_of - destroy_after``), or the ``partitions`` given, live or archived.
    """
    if action not in ACTIONS:
        raise ArchiveError(f"action {action!r} is not one of {', '.join(ACTIONS)}")
    live, arch = locations(lake_root, policy)
    column = policy.partition_column
    chosen: list[PartitionPlan] = []
    kept: list[str] = []
    skipped: list[tuple[str, str]] = []
    if action == "archive":
        cutoff: date | None = policy.archive_cutoff(as_of)
        present = list_partitions(live, column)
        if not present and not live.exists():
            raise ArchiveError(f"{live.uri}: no such dataset folder")
        requested = _check_requested(partitions, present, live.uri, column)
        for name in requested or present:
            listed = list_files(live.child(name))
            if policy.basis == "partition_date":
                day = policy.parse_date(_value(name))
                if day is None:
                    skipped.append((name, f"value does not read as {policy.date_format}"))
                    continue
            else:
                day = _mtime_day(max((f.mtime_ns or 0) for f in listed)) if listed else None
            due = day is not None and day < cutoff
            what = "dated" if policy.basis == "partition_date" else "last written"
            if not due and requested is None:
                kept.append(name)
                continue
            reason = f"{what} {day} < cutoff {cutoff}" if due else f"requested ({what} {day}, not due before {cutoff})"
            files = _planned_files(live.child(name), "live", listed, threads)
            chosen.append(PartitionPlan(name, _value(name), day, {"live": live.child(name).uri}, tuple(files),
                                        arch.child(name).uri, reason))  # fmt: skip
    elif action == "restore":
        cutoff = None
        present = list_partitions(arch, column)
        requested = _check_requested(partitions, present, arch.uri, column)
        for name in requested or present:
            manifest = read_manifest(arch.child(name))
            if manifest is None:
                if requested is not None:
                    raise ArchiveError(f"{arch.child(name).uri}: no {ARCHIVE_MANIFEST}: not a complete archive")
                skipped.append((name, f"no {ARCHIVE_MANIFEST}: not a complete archive"))
                continue
            files = [PlannedFile("archive", e["path"], e["bytes"], e["rows"]) for e in manifest["files"]]
            chosen.append(PartitionPlan(name, _value(name), policy.parse_date(_value(name)),
                                        {"archive": arch.child(name).uri}, tuple(files), live.child(name).uri,
                                        f"archived {manifest.get('archived_at', '?')[:10]}"))  # fmt: skip
    else:
        cutoff = policy.destroy_cutoff(as_of)
        in_live, in_arch = list_partitions(live, column), list_partitions(arch, column)
        requested = _check_requested(partitions, sorted(set(in_live) | set(in_arch)), f"{live.uri} or {arch.uri}",
                                     column)  # fmt: skip
        for name in requested or in_arch:
            manifest = read_manifest(arch.child(name)) if name in in_arch else None
            archived = (manifest or {}).get("archived_at")
            if requested is None:
                due = cutoff is not None and archived is not None and date.fromisoformat(archived[:10]) < cutoff
                if not due:
                    kept.append(name)
                    continue
                reason = f"archived {archived[:10]} < cutoff {cutoff}"
            else:
                reason = "requested" + (f" (archived {archived[:10]})" if archived else " (live, not archived)")
            where, files = {}, []
            for copy, loc, present in (("live", live, in_live), ("archive", arch, in_arch)):
                if name in present:
                    where[copy] = loc.child(name).uri
                    files += _planned_files(loc.child(name), copy, list_files(loc.child(name)), threads)
            chosen.append(PartitionPlan(name, _value(name), policy.parse_date(_value(name)), where, tuple(files),
                                        None, reason))  # fmt: skip
    return Plan(policy.dataset, action, as_of, cutoff, tuple(chosen), tuple(kept), tuple(skipped))


# --- operation rows -------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    id: int
    kind: str
    dataset: str
    partition: str
    state: str
    rows: int | None
    bytes: int | None
    files: int | None
    manifest: dict[str, Any] | None
    dag_id: str
    run_id: str
    finished_at: datetime | None = None


_OP_COLUMNS = "id, kind, dataset, partition, state, rows, bytes, files, manifest, dag_id, run_id, finished_at"


def _op(row: Any) -> Operation:
    return Operation(**{k: getattr(row, k) for k in _OP_COLUMNS.split(", ")})


def operations(target: Engine | Connection, *, dataset: str | None = None, dag_id: str | None = None,
               run_id: str | None = None, kind: str | None = None) -> list[Operation]:  # fmt: skip
    """Operation rows, oldest first, filtered by whatever is given."""
    where = [f"{c} = :{c}" for c, v in (("dataset", dataset), ("dag_id", dag_id), ("run_id", run_id), ("kind", kind))
             if v is not None]  # fmt: skip
    sql = f"SELECT {_OP_COLUMNS} FROM govops.security_archive_operation"
    sql += (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY id"
    params = {"dataset": dataset, "dag_id": dag_id, "run_id": run_id, "kind": kind}
    if isinstance(target, Connection):
        return [_op(r) for r in target.execute(text(sql), params)]
    with target.connect() as conn:
        return [_op(r) for r in conn.execute(text(sql), params)]


@contextmanager
def partition_lock(engine: Engine, dataset: str, partition: str) -> Iterator[None]:
    """One task at a time per partition, across runs and kinds (a session advisory lock: a
    killed worker's connection closes and the lock goes with it)."""
    key = {"c": _LOCK_CLASS, "k": f"govops.archive:{dataset}/{partition}"}
    conn = engine.connect()
    try:
        got = conn.execute(text("SELECT pg_try_advisory_lock(:c, hashtext(:k))"), key).scalar()
        conn.commit()
        if not got:
            raise OperationPending(f"{dataset}/{partition}: another task is archiving, restoring or destroying it now")
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:c, hashtext(:k))"), key)
            conn.commit()
    finally:
        conn.close()


def _insert_planned(conn: Connection, kind: str, dataset: str, partition: str, ctx: RunContext, *,
                    rows: int | None = None, size: int | None = None, files: int | None = None) -> None:  # fmt: skip
    conn.execute(
        text("""INSERT INTO govops.security_archive_operation
                       (kind, dataset, partition, state, rows, bytes, files, dag_id, run_id, work_order_id)
                VALUES (:kind, :dataset, :partition, 'planned', :rows, :bytes, :files, :dag, :run, :wo)
                ON CONFLICT (kind, dataset, partition, dag_id, run_id) DO NOTHING"""),
        {"kind": kind, "dataset": dataset, "partition": partition, "rows": rows, "bytes": size, "files": files,
         "dag": ctx.dag_id, "run": ctx.run_id, "wo": ctx.work_order_id},
    )  # fmt: skip


def acquire(engine: Engine, kind: str, dataset: str, partition: str, ctx: RunContext) -> Operation:
    """This run's row for the partition (created if the run did not plan it), after taking
    over what other runs left unfinished on it (see the module docstring)."""
    with engine.begin() as conn:
        _insert_planned(conn, kind, dataset, partition, ctx)
        own = _op(conn.execute(
            text(f"""SELECT {_OP_COLUMNS} FROM govops.security_archive_operation WHERE kind = :kind
                     AND dataset = :dataset AND partition = :partition AND dag_id = :dag AND run_id = :run
                     FOR UPDATE"""),
            {"kind": kind, "dataset": dataset, "partition": partition, "dag": ctx.dag_id, "run": ctx.run_id},
        ).one())  # fmt: skip
        if own.state in DONE:
            return own
        others = [_op(r) for r in conn.execute(
            text(f"""SELECT {_OP_COLUMNS} FROM govops.security_archive_operation
                     WHERE dataset = :dataset AND partition = :partition AND id <> :id
                       AND state NOT IN ('removed', 'restored', 'destroyed', 'superseded') ORDER BY id FOR UPDATE"""),
            {"dataset": dataset, "partition": partition, "id": own.id},
        )]  # fmt: skip
        adopt: Operation | None = None
        for other in others:
            if other.kind != kind and other.state != "planned" and kind != "destroy":
                raise OperationPending(
                    f"{dataset}/{partition}: run {other.dag_id}/{other.run_id} left its {other.kind} unfinished at "
                    f"step {other.state!r}; re-run that run to finish it first"
                )
            if other.kind == kind and PROGRESS.get(other.state, 0) > PROGRESS.get((adopt or own).state, 0):
                adopt = other
        for other in others:
            conn.execute(
                text("""UPDATE govops.security_archive_operation SET state = 'superseded', finished_at = now(),
                               manifest = coalesce(manifest, '{}'::jsonb) || CAST(:by AS jsonb) WHERE id = :id"""),
                {"id": other.id, "by": json.dumps({"superseded_by": ctx.as_json(), "superseded_at_step": other.state})},
            )  # fmt: skip
        if adopt is not None:
            conn.execute(
                text("""UPDATE govops.security_archive_operation SET state = :state, rows = :rows, bytes = :bytes,
                               files = :files, manifest = CAST(:manifest AS jsonb) WHERE id = :id"""),
                {"state": adopt.state, "rows": adopt.rows, "bytes": adopt.bytes, "files": adopt.files, "id": own.id,
                 "manifest": json.dumps(adopt.manifest)},
            )  # fmt: skip
            own = Operation(**{**own.__dict__, "state": adopt.state, "rows": adopt.rows, "bytes": adopt.bytes,
                               "files": adopt.files, "manifest": adopt.manifest})  # fmt: skip
        return own


_KEEP: Any = object()


def set_state(engine: Engine, op: Operation, state: str, *, manifest: Any = _KEEP, rows: Any = _KEEP,
              size: Any = _KEEP, files: Any = _KEEP) -> Operation:  # fmt: skip
    """Advance a partition's row to its next step (committed before the next step starts)."""
    if manifest is not _KEEP and manifest is not None:
        manifest = dict(manifest)
    new = Operation(**{**op.__dict__, "state": state, "manifest": op.manifest if manifest is _KEEP else manifest,
                       "rows": op.rows if rows is _KEEP else rows, "bytes": op.bytes if size is _KEEP else size,
                       "files": op.files if files is _KEEP else files})  # fmt: skip
    with engine.begin() as conn:
        conn.execute(
            text("""UPDATE govops.security_archive_operation SET state = :state, manifest = CAST(:manifest AS jsonb),
                           rows = :rows, bytes = :bytes, files = :files WHERE id = :id"""),
            {"state": state, "manifest": json.dumps(new.manifest), "rows": new.rows, "bytes": new.bytes,
             "files": new.files, "id": op.id},
        )  # fmt: skip
    return new


def finish(engine: Engine, op: Operation, state: str, ctx: RunContext, details: Mapping[str, Any]) -> Operation:
    """The last step of a partition: its final state and its audit entry, in one transaction."""
    with engine.begin() as conn:
        seq = audit.append(conn, actor=ctx.actor, action=f"{op.kind}.partition", dataset=op.dataset,
                           details={"partition": op.partition, **details, **ctx.as_json()})  # fmt: skip
        manifest = {**(op.manifest or {}), "audit_seq": seq}
        at = conn.execute(
            text("""UPDATE govops.security_archive_operation SET state = :state, finished_at = now(),
                           manifest = CAST(:manifest AS jsonb) WHERE id = :id RETURNING finished_at"""),
            {"state": state, "manifest": json.dumps(manifest), "id": op.id},
        ).scalar_one()  # fmt: skip
    return Operation(**{**op.__dict__, "state": state, "manifest": manifest, "finished_at": at})


def supersede(engine: Engine, op: Operation, why: str) -> Operation:
    """The work is already done (by another run): this row never meters."""
    manifest = {**(op.manifest or {}), "superseded_because": why}
    with engine.begin() as conn:
        conn.execute(
            text("""UPDATE govops.security_archive_operation SET state = 'superseded', finished_at = now(),
                           manifest = CAST(:manifest AS jsonb) WHERE id = :id"""),
            {"manifest": json.dumps(manifest), "id": op.id},
        )  # fmt: skip
    return Operation(**{**op.__dict__, "state": SUPERSEDED, "manifest": manifest})


# --- archive and restore --------------------------------------------------------------


def _summary(op: Operation) -> dict[str, Any]:
    m = op.manifest or {}
    return {"partition": op.partition, "kind": op.kind, "state": op.state, "rows": op.rows or 0,
            "files": op.files or 0, "bytes": op.bytes or 0, "audit_seq": m.get("audit_seq"),
            "note": m.get("superseded_because") or m.get("superseded_by")}  # fmt: skip


def _staging_for(dst: Location) -> Location:
    return dst.parent.child(STAGING, dst.name)


def _copy_into_place(src: Location, dst: Location, rels: Sequence[str], threads: int, hook: Hook,
                     manifest: Callable[[list[dict[str, Any]]], dict[str, Any]],
                     write_manifest: bool) -> dict[str, Any]:  # fmt: skip
    """Copy into the staging folder, then rename it to ``dst``: readers of ``dst`` see no
    partition or the whole one. A staging folder left by a killed copy is cleared first."""
    staging = _staging_for(dst)
    staging.delete()
    entries = copy_files(src, staging, rels, threads=threads, hook=hook)
    body = manifest(entries)
    if write_manifest:
        _write_json(staging, ARCHIVE_MANIFEST, body)
    hook("staged")
    dst.fs.create_dir(dst.parent.path, recursive=True)
    dst.fs.move(staging.path, dst.path)
    hook("copied")
    return body


def _remove_source(src: Location, expected: Sequence[Mapping[str, Any]], hook: Hook, what: str) -> None:
    """Remove a copy whose counterpart verified; refuse if files appeared in it meanwhile."""
    listed = list_files(src)
    want = {e["path"]: e["bytes"] for e in expected}
    strange = [f"{f.path} ({f.bytes} bytes)" for f in listed if want.get(f.path) != f.bytes]
    if strange:
        raise ArchiveConflict(f"{src.uri}: file(s) not in the verified manifest appeared in the {what}: "
                              f"{_short(strange)}; nothing was removed")  # fmt: skip
    if listed:
        src.fs.delete_file(f"{src.path}/{listed[0].path}")
        hook("removing")
    src.delete()
    hook("removed")


def archive_partition(engine: Engine, lake_root: str, policy: RetentionPolicy, partition: str, ctx: RunContext, *,
                      threads: int = 4, fail_at: Hook | None = None) -> dict[str, Any]:  # fmt: skip
    """Archive one live partition (copy, verify, remove), resuming whatever an earlier attempt left."""
    hook = fail_at or _no_hook
    live_root, arch_root = locations(lake_root, policy)
    live, arch = live_root.child(partition), arch_root.child(partition)
    with partition_lock(engine, policy.dataset, partition):
        op = acquire(engine, "archive", policy.dataset, partition, ctx)
        if op.state in DONE:
            return _summary(op)
        if op.state == "planned":
            if not live.exists():
                if read_manifest(arch) is not None:
                    return _summary(supersede(engine, op, f"already archived at {arch.uri}"))
                raise ArchiveError(f"{live.uri}: no such partition")
            listed = list_files(live)
            if arch.exists():
                # A complete copy is already in place (a kill after the rename, or an older
                # archive): use it only if it holds exactly the live content.
                body = read_manifest(arch)
                if body is None:
                    raise ArchiveConflict(f"{arch.uri} exists without {ARCHIVE_MANIFEST}: not an archive this "
                                          "service wrote; move it away first")  # fmt: skip
                diff = manifest_diff(body["files"], hash_files(live, threads=threads))
                if diff:
                    raise ArchiveConflict(
                        f"{arch.uri} already holds an archive of {partition} with other content ({_short(diff)}); "
                        "restore or destroy it before archiving again"
                    )
            else:
                def manifest(entries: list[dict[str, Any]]) -> dict[str, Any]:
                    return {"manifest_version": 1, "kind": "archive", "dataset": policy.dataset,
                            "partition": partition, "source": live.uri, "archive": arch.uri, "files": entries,
                            "rows": sum(e["rows"] or 0 for e in entries), "bytes": sum(e["bytes"] for e in entries),
                            "archived_at": datetime.now(UTC).isoformat(timespec="seconds"),
                            "run": ctx.as_json()}  # fmt: skip

                body = _copy_into_place(live, arch, [f.path for f in listed], threads, hook, manifest, True)
            op = set_state(engine, op, "copied", manifest=body, rows=body["rows"], size=body["bytes"],
                           files=len(body["files"]))  # fmt: skip
            hook("copied-recorded")
        files = op.manifest["files"]
        if op.state == "copied":
            diff = manifest_diff(files, hash_files(arch, threads=threads))
            if diff:
                raise VerificationFailed(f"{arch.uri}: the archived copy does not match its manifest: {_short(diff)}")
            changed = manifest_diff(files, [file_entry(f.path, f.bytes, "", None) for f in list_files(live)],
                                    keys=("bytes",))  # fmt: skip
            if changed:
                arch.delete()  # stale: the live partition (which still has everything) changed after the copy
                set_state(engine, op, "planned", manifest=None, rows=None, size=None, files=None)
                raise ArchiveError(f"{live.uri} changed after it was copied ({_short(changed)}); the stale copy "
                                   "was removed: a retry archives the new content")  # fmt: skip
            op = set_state(engine, op, "verified")
            hook("verified")
        if op.state == "verified":
            if manifest_diff(files, [file_entry(f.path, f.bytes, "", None) for f in list_files(arch)], keys=("bytes",)):
                raise VerificationFailed(f"{arch.uri}: the verified archive changed; the live partition was kept")
            _remove_source(live, files, hook, "live partition")
            op = finish(engine, op, "removed", ctx, {"rows": op.rows, "files": op.files, "bytes": op.bytes,
                                                     "manifest_sha256": manifest_digest(files),
                                                     "source": live.uri, "archive": arch.uri})  # fmt: skip
        return _summary(op)


def restore_partition(engine: Engine, lake_root: str, policy: RetentionPolicy, partition: str, ctx: RunContext, *,
                      threads: int = 4, fail_at: Hook | None = None) -> dict[str, Any]:  # fmt: skip
    """Bring one archived partition back, identical (sha256 and rows as archived); then the
    archived copy is removed. A live partition with other content is never overwritten."""
    hook = fail_at or _no_hook
    live_root, arch_root = locations(lake_root, policy)
    live, arch = live_root.child(partition), arch_root.child(partition)
    with partition_lock(engine, policy.dataset, partition):
        op = acquire(engine, "restore", policy.dataset, partition, ctx)
        if op.state in DONE:
            return _summary(op)
        if op.state == "planned":
            body = read_manifest(arch)
            if body is None:
                if arch.exists():
                    raise ArchiveError(f"{arch.uri}: no {ARCHIVE_MANIFEST}: not a complete archive, nothing restored")
                if live.exists():
                    return _summary(supersede(engine, op, f"not archived: already live at {live.uri}"))
                raise ArchiveError(f"{arch.uri}: no such archived partition")
            if live.exists():
                diff = manifest_diff(body["files"], hash_files(live, threads=threads))
                if diff:
                    raise RestoreConflict(f"{live.uri} exists with other content than the archive ({_short(diff)}); "
                                          "a restore never overwrites live data: move it away first")  # fmt: skip
            else:
                def check(entries: list[dict[str, Any]]) -> dict[str, Any]:
                    diff = manifest_diff(body["files"], entries)
                    if diff:
                        raise VerificationFailed(f"{arch.uri}: the archived files do not match their manifest "
                                                 f"({_short(diff)}); nothing was restored")  # fmt: skip
                    return body

                _copy_into_place(arch, live, [e["path"] for e in body["files"]], threads, hook, check, False)
            body = {**body, "restored_to": live.uri, "restore_run": ctx.as_json()}
            op = set_state(engine, op, "copied", manifest=body, rows=body["rows"], size=body["bytes"],
                           files=len(body["files"]))  # fmt: skip
            hook("copied-recorded")
        files = op.manifest["files"]
        if op.state == "copied":
            diff = manifest_diff(files, hash_files(live, threads=threads))
            if diff:
                raise VerificationFailed(f"{live.uri}: the restored copy does not match the manifest: {_short(diff)}")
            op = set_state(engine, op, "verified")
            hook("verified")
        if op.state == "verified":
            if manifest_diff(files, [file_entry(f.path, f.bytes, "", None) for f in list_files(live)], keys=("bytes",)):
                raise VerificationFailed(f"{live.uri}: the restored partition changed; the archived copy was kept")
            _remove_source(arch, files, hook, "archived partition")
            op = finish(engine, op, "restored", ctx, {"rows": op.rows, "files": op.files, "bytes": op.bytes,
                                                      "manifest_sha256": manifest_digest(files),
                                                      "archive": arch.uri, "restored_to": live.uri})  # fmt: skip
        return _summary(op)


# --- runs -----------------------------------------------------------------------------


def prepare_run(engine: Engine, lake_root: str, policy: RetentionPolicy, action: str, ctx: RunContext, *,
                as_of: date, partitions: Sequence[str] | None = None) -> dict[str, Any]:  # fmt: skip
    """The partitions of a run. The first call plans and records them (state ``planned``);
    a re-run of the same run gets the same list back, so its mapped tasks and its metering
    stay what they were."""
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:c, hashtext(:k))"),
                     {"c": _LOCK_CLASS, "k": f"govops.archive.run:{ctx.dag_id}/{ctx.run_id}"})  # fmt: skip
        recorded = [op.partition for op in operations(conn, dataset=policy.dataset, dag_id=ctx.dag_id,
                                                      run_id=ctx.run_id, kind=action)]  # fmt: skip
        the_plan = None if recorded else plan(lake_root, policy, action, as_of=as_of, partitions=partitions)
        if action == "destroy":  # all or nothing: refused before any partition is touched
            from govops.security.destruction import check_destruction_allowed

            wanted = recorded or [p.partition for p in the_plan.partitions]
            check_destruction_allowed(engine, ctx.work_order_id, policy.dataset, wanted,
                                      column=policy.partition_column)  # fmt: skip
        if the_plan is None:
            return {"partitions": recorded, "resumed": True, "plan": None}
        for p in the_plan.partitions:
            _insert_planned(conn, action, policy.dataset, p.partition, ctx, rows=p.rows, size=p.bytes,
                            files=len(p.files))  # fmt: skip
    return {"partitions": [p.partition for p in the_plan.partitions], "resumed": False,
            "plan": the_plan.as_json(with_files=False)}  # fmt: skip


def process_partition(engine: Engine, lake_root: str, policy: RetentionPolicy, action: str, partition: str,
                      ctx: RunContext, *, threads: int = 4, fail_at: Hook | None = None) -> dict[str, Any]:  # fmt: skip
    if action == "archive":
        return archive_partition(engine, lake_root, policy, partition, ctx, threads=threads, fail_at=fail_at)
    if action == "restore":
        return restore_partition(engine, lake_root, policy, partition, ctx, threads=threads, fail_at=fail_at)
    if action == "destroy":
        from govops.security.destruction import destroy_partition

        return destroy_partition(engine, lake_root, policy, partition, ctx, threads=threads, fail_at=fail_at)
    raise ArchiveError(f"action {action!r} is not one of {', '.join(ACTIONS)}")


def run(engine: Engine, lake_root: str, policy: RetentionPolicy, action: str, ctx: RunContext, *, as_of: date,
        partitions: Sequence[str] | None = None, threads: int = 4, fail_at: Hook | None = None,
        config: Any = None, log_folders: Sequence[str] = ()) -> dict[str, Any]:  # fmt: skip
    """A whole run in-process (what the DAG does task by task): prepare, every partition, and
    for a destruction the key, the residue check and the certificate."""
    prepared = prepare_run(engine, lake_root, policy, action, ctx, as_of=as_of, partitions=partitions)
    done = [process_partition(engine, lake_root, policy, action, p, ctx, threads=threads, fail_at=fail_at)
            for p in prepared["partitions"]]  # fmt: skip
    result: dict[str, Any] = {"partitions": done, "plan": prepared["plan"]}
    if action == "destroy":
        from govops.security.destruction import finalize_destruction

        result["certificate"] = finalize_destruction(engine, lake_root, policy, ctx, config=config,
                                                     log_folders=log_folders)  # fmt: skip
    return result


def run_totals(target: Engine | Connection, dataset: str, kind: str, dag_id: str, run_id: str) -> dict[str, Any]:
    """What a run finished: partitions, rows, files, bytes (superseded rows excluded)."""
    ops = [o for o in operations(target, dataset=dataset, dag_id=dag_id, run_id=run_id, kind=kind)]
    done = [o for o in ops if o.state == FINAL[kind]]
    pending = [o.partition for o in ops if o.state not in DONE]
    return {"partitions": len(done), "rows": sum(o.rows or 0 for o in done), "files": sum(o.files or 0 for o in done),
            "bytes": sum(o.bytes or 0 for o in done), "pending": pending,
            "superseded": [o.partition for o in ops if o.state == SUPERSEDED]}  # fmt: skip


def meter_run(engine: Engine, task: TaskRef, *, work_order_id: str | None, dataset: str, kind: str) -> dict[str, Any]:
    """One usage event per run: item 21, the records the run archived or destroyed (a restore
    meters nothing). Refused while a partition of the run is unfinished. The run's partitions
    are fixed when it is planned and their rows when they finish, so a retry or re-run records
    the same measures (a no-op)."""
    with engine.connect() as conn:
        totals = run_totals(conn, dataset, kind, task.dag_id, task.run_id)
        finished = conn.execute(
            text("""SELECT max(finished_at) FROM govops.security_archive_operation WHERE kind = :kind
                    AND dataset = :dataset AND dag_id = :dag AND run_id = :run AND state = :state"""),
            {"kind": kind, "dataset": dataset, "dag": task.dag_id, "run": task.run_id, "state": FINAL[kind]},
        ).scalar()  # fmt: skip
    if totals["pending"]:
        raise ArchiveError(f"{dataset}: partition(s) {', '.join(totals['pending'])} of run {task.run_id} are not "
                           "finished; nothing metered")  # fmt: skip
    if kind == "restore" or not totals["partitions"]:
        return {**totals, "metered": 0, "inserted": 0}
    event = UsageEvent(
        task=task, service_item_code=SERVICE_ITEM, quantity=totals["rows"], unit=UNIT, event_time=finished,
        work_order_id=work_order_id, data_source=dataset, records=totals["rows"],
        attributes={"action": kind, "partitions": totals["partitions"], "files": totals["files"],
                    "bytes": totals["bytes"]},
    )  # fmt: skip
    written = record_usage(engine, [event])
    return {**totals, "metered": totals["rows"], "inserted": written.inserted}


def as_of_date(value: str | date | None, default: date) -> date:
    if isinstance(value, date):
        return value
    if not value:
        return default
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise ArchiveError(f"as_of: {value!r} is not a date YYYY-MM-DD") from None


def safe_name(part: str) -> str:
    """A path-safe folder name for a run id or a dataset."""
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", part)
