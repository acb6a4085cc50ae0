"""Destruction of dataset partitions (item 21): approval, irreversible removal, crypto-shredding,
residue verification and the destruction certificate (数据销毁证明).

**Approval.** Nothing is destroyed without a work order of item 21 that may run
(``check_runnable``) and a row of ``govops.security_destruction_approval`` for that work
order and dataset whose partitions (or ``["*"]``) cover every partition to destroy, approved
by someone other than who requested it (:func:`approve_destruction`). Otherwise
``DESTRUCTION_REFUSED`` says what is missing. The check runs before planning and again
before each partition is touched.

**Removal** of a partition (resumable like an archive, see :mod:`govops.security.archive`):
``planned → inventoried`` (every file of the live and the archived copy listed with its
sha256 and footer rows; the fingerprints of its distinctive values taken, see below)
``→ destroyed`` (both copies and any staging leftover deleted, then checked gone; the audit
entry in the same transaction as the state).

**Crypto-shredding.** When the policy names a data key, no other policy uses it and nothing
of the dataset is left live or archived, the key is destroyed
(``govops.security.keys.destroy_key``): whatever copy of the encrypted data survives
anywhere (backups, replicas) can never be decrypted again.

**Residue verification.** Before deleting, the values of the policy's
``fingerprint_columns`` (at least ``fingerprint_min_length`` characters) are fingerprinted
with a keyed hash (BLAKE2b-64 under a sub-key of the data key
``govops-residue-fingerprints``, so the fingerprints cannot be reversed by trying every ID
number) and kept in ``<lake>/_staging/security_destroy/<dataset>/<partition>.npy`` until
the destruction is certified. Afterwards the whole lake is scanned, except the dataset's
remaining partitions (they legitimately keep their own records): the min/max statistics in
every Parquet footer (table-format statistics), every value of the Parquet files of the
``full_scan_zones`` (default: anomalies, rejects, owner: the full quality anomaly lists),
and every text file (CSV, JSON, JSON lines, logs, HTML reports, XML, YAML, Delta-style
JSON logs with their statistics) and XLSX/DOCX, plus the configured log folders (e.g.
Airflow task logs). Text is matched by whole tokens and fields (IDs, phone numbers, codes,
runs of CJK characters), never by substrings of words. Every place a fingerprint matches
is reported by location and column or line numbers, never by value; a destruction with
residue is certified *incomplete* and its task fails naming the places
(``DESTRUCTION_RESIDUE``). Once the residue is removed, a re-run certifies it complete.

**Certificate.** ``<lake>/reports/security/destruction/<dataset>/<run>/certificate.json``
and ``.html``: dataset, partitions, row counts before and after, every file's sha256, the
method, the time, the work order, requester and approver, the run, the key shredded, the
residue check, and the seq and hash of its audit-log entry. It is signed
(``certificate_version`` 2): ``signature`` holds the HMAC-SHA256 of the certificate's
canonical JSON (every other field, keys sorted, no spaces) under the master key's
certificate sub-key (``govops.security.signing``) and the master key version.
:func:`verify_certificate` (``python -m govops.security certificate-verify FILE``) checks a
certificate file with the master key alone, without the database; a changed field, a
removed signature or an unsigned certificate of version 1 does not verify.
"""

from __future__ import annotations

import functools
import hashlib
import html
import io
import json
import re
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from govops.errors import CodedError
from govops.security import audit, signing
from govops.security.archive import (
    DONE,
    STAGING,
    ArchiveError,
    Hook,
    Location,
    RunContext,
    _no_hook,
    _summary,
    acquire,
    finish,
    footer_rows,
    hash_files,
    is_parquet,
    list_files,
    list_partitions,
    locations,
    manifest_digest,
    operations,
    partition_lock,
    safe_name,
    set_state,
    supersede,
)
from govops.security.retention import RetentionConfig, RetentionPolicy

FINGERPRINT_KEY = "govops-residue-fingerprints"
CERTIFICATE_VERSION = 2  # 1: unsigned; 2: signed with the master key
FINGERPRINT_STORE = "_staging/security_destroy"
DESTROY_STEPS = ("inventoried", "removing", "removed")
TEXT_SUFFIXES = frozenset({
    ".csv", ".tsv", ".txt", ".json", ".jsonl", ".ndjson", ".log", ".html", ".htm", ".xml", ".yaml", ".yml", ".md",
    ".sql", ".out", ".err",
})  # fmt: skip
ZIP_SUFFIXES = frozenset({".xlsx", ".docx", ".pptx"})
METHOD_DELETE = "physical deletion of every file of the live and archived copies (pyarrow.fs delete)"
_ASCII = re.compile(r"[0-9A-Za-z@._+\-]+")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
_FIELD_SPLIT = re.compile(r"[,\t|;<>\"'=:\[\]{}()\r\n]+")
_TAGS = re.compile(r"<[^>]*>")


class DestructionRefused(CodedError):
    code = "DESTRUCTION_REFUSED"


class ResidueFound(ArchiveError):
    code = "DESTRUCTION_RESIDUE"


# --- approvals ------------------------------------------------------------------------


@dataclass(frozen=True)
class Approval:
    id: int
    work_order_id: str
    dataset: str
    partitions: tuple[str, ...]
    requested_by: str
    approved_by: str
    approved_at: datetime

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "work_order_id": self.work_order_id, "partitions": list(self.partitions),
                "requested_by": self.requested_by, "approved_by": self.approved_by,
                "approved_at": self.approved_at.isoformat()}  # fmt: skip


def approve_destruction(engine: Engine, work_order_id: str, dataset: str, partitions: Sequence[str], *,
                        requested_by: str, approved_by: str) -> int:  # fmt: skip
    """Record that ``approved_by`` approved the destruction ``requested_by`` asked for
    (partition names ``<column>=<value>``, or ``["*"]`` for every partition); audited."""
    requested_by, approved_by = (requested_by or "").strip(), (approved_by or "").strip()
    if not requested_by or not approved_by:
        raise DestructionRefused("an approval names who requested the destruction and who approved it")
    if requested_by == approved_by:
        raise DestructionRefused(f"{approved_by} cannot approve a destruction they requested: two people are needed")
    wanted = sorted({str(p).strip() for p in partitions})
    if not wanted or any(not p for p in wanted) or ("*" in wanted and len(wanted) > 1):
        raise DestructionRefused(f"partitions: give partition names or ['*'], got {list(partitions)!r}")
    with engine.begin() as conn:
        approval_id = conn.execute(
            text("""INSERT INTO govops.security_destruction_approval
                           (work_order_id, dataset, partitions, requested_by, approved_by)
                    VALUES (:wo, :dataset, CAST(:partitions AS jsonb), :req, :app) RETURNING id"""),
            {"wo": work_order_id, "dataset": dataset, "partitions": json.dumps(wanted), "req": requested_by,
             "app": approved_by},
        ).scalar_one()  # fmt: skip
        audit.append(conn, actor=approved_by, action="destroy.approve", dataset=dataset,
                     details={"approval_id": approval_id, "work_order_id": work_order_id, "partitions": wanted,
                              "requested_by": requested_by})  # fmt: skip
    return approval_id


def check_destruction_allowed(engine: Engine, work_order_id: str | None, dataset: str, partitions: Sequence[str], *,
                              column: str | None = None) -> list[Approval]:  # fmt: skip
    """The approvals that allow destroying these partitions, or DESTRUCTION_REFUSED."""
    from govops.settlement.workorders import WorkOrderError, check_runnable

    if not work_order_id:
        raise DestructionRefused(f"{dataset}: a destruction needs a work order of item 21")
    try:
        check_runnable(engine, work_order_id, "21", "record")
    except WorkOrderError as exc:
        raise DestructionRefused(f"{dataset}: {exc}") from None

    def full(name: str) -> str:
        return name if "=" in name or name == "*" or column is None else f"{column}={name}"

    with engine.connect() as conn:
        rows = conn.execute(
            text("""SELECT id, work_order_id, dataset, partitions, requested_by, approved_by, approved_at
                      FROM govops.security_destruction_approval WHERE work_order_id = :wo AND dataset = :dataset
                     ORDER BY id"""),
            {"wo": work_order_id, "dataset": dataset},
        ).all()  # fmt: skip
    approvals = [Approval(r.id, r.work_order_id, r.dataset, tuple(full(p) for p in r.partitions), r.requested_by,
                          r.approved_by, r.approved_at) for r in rows]  # fmt: skip
    # The table refuses requester == approver; a row that got past it does not count.
    valid = [a for a in approvals if a.requested_by.strip() != a.approved_by.strip()]
    if not valid:
        why = "only approvals by their own requester" if approvals else "no approval"
        raise DestructionRefused(
            f"{dataset}: work order {work_order_id} has {why} for destroying it; a second person must approve "
            "(govops.security.destruction.approve_destruction)"
        )
    wanted = [full(p) for p in partitions]
    used = [a for a in valid if "*" in a.partitions or set(a.partitions) & set(wanted)]
    covered = {p for a in used for p in a.partitions}
    missing = [p for p in wanted if "*" not in covered and p not in covered]
    if missing:
        raise DestructionRefused(
            f"{dataset}: partition(s) {', '.join(missing)} are not covered by an approval of work order {work_order_id}"
        )
    return used


# --- fingerprints ---------------------------------------------------------------------


class Fingerprinter:
    """Keyed 64-bit fingerprints of values: equal values, equal fingerprints; irreversible
    without the key."""

    def __init__(self, key: bytes, min_length: int, version: int) -> None:
        self.key, self.min_length, self.version = key, min_length, version
        self.digest = functools.lru_cache(maxsize=1 << 18)(self._digest)

    def _digest(self, value: str) -> int:
        return int.from_bytes(hashlib.blake2b(value.encode(), key=self.key, digest_size=8).digest(), "little")

    def of(self, values: Iterable[Any]) -> Any:  # -> np.ndarray of uint64, sorted, unique
        import numpy as np

        out = {self.digest(s) for v in values if v is not None and len(s := str(v).strip()) >= self.min_length}
        return np.unique(np.fromiter(out, dtype=np.uint64, count=len(out)))


def fingerprinter(engine: Engine, *, min_length: int, version: int | None = None, by: str = "govops") -> Fingerprinter:
    from govops.security import keys

    with engine.begin() as conn:
        if version is None:
            version, key = keys.data_key(conn, FINGERPRINT_KEY, by=by)
        else:
            found = keys.key_versions(conn, FINGERPRINT_KEY)
            if version not in found:
                raise ArchiveError(f"data key {FINGERPRINT_KEY} version {version} is gone: the fingerprints taken "
                                   "before the destruction can no longer be compared")  # fmt: skip
            key = found[version]
    return Fingerprinter(keys.subkey(key, "residue-fingerprint/blake2b-64"), min_length, version)


def _string_values(table: Any) -> Iterator[tuple[str, list[Any]]]:
    """Each column's distinct values as text (columns that do not cast to text are skipped)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for name in table.column_names:
        column = table.column(name)
        if pa.types.is_nested(column.type):
            continue
        try:
            values = pc.unique(pc.cast(column, pa.string()))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            continue
        yield name, values.to_pylist()


def take_fingerprints(copies: dict[str, Location], policy: RetentionPolicy, fp: Fingerprinter,
                      threads: int = 4) -> tuple[Any, list[str]]:  # fmt: skip
    """Fingerprints of the policy's columns over every Parquet file of the copies, and the
    columns found."""
    import numpy as np
    import pyarrow.parquet as pq

    parts, found = [], set()
    for loc in copies.values():
        for f in list_files(loc):
            if not is_parquet(f.path) or not policy.fingerprint_columns:
                continue
            path = f"{loc.path}/{f.path}"
            names = set(pq.read_schema(path, filesystem=loc.fs).names)
            columns = [c for c in policy.fingerprint_columns if c in names]
            found |= set(columns)
            if columns:
                table = pq.read_table(path, filesystem=loc.fs, columns=columns)
                for _, values in _string_values(table):
                    parts.append(fp.of(values))
    merged = np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.uint64)
    return merged, sorted(found)


def _store(lake_root: str, dataset: str) -> Location:
    return Location.of(f"{lake_root.rstrip('/')}/{FINGERPRINT_STORE}/{dataset}")


def _save_fingerprints(loc: Location, partition: str, values: Any) -> None:
    import numpy as np

    loc.fs.create_dir(loc.path, recursive=True)
    buffer = io.BytesIO()
    np.save(buffer, values)
    with loc.fs.open_output_stream(f"{loc.path}/{partition}.npy", compression=None) as out:
        out.write(buffer.getvalue())


def _load_fingerprints(loc: Location, partition: str) -> Any | None:
    import numpy as np

    try:
        with loc.fs.open_input_stream(f"{loc.path}/{partition}.npy", compression=None) as fin:
            return np.load(io.BytesIO(fin.read()))
    except FileNotFoundError:
        return None


# --- destroying a partition -----------------------------------------------------------


def destroy_partition(engine: Engine, lake_root: str, policy: RetentionPolicy, partition: str, ctx: RunContext, *,
                      threads: int = 4, fail_at: Hook | None = None) -> dict[str, Any]:  # fmt: skip
    """Destroy the live and archived copies of one partition (after the approval check),
    resuming whatever an earlier attempt left."""
    hook = fail_at or _no_hook
    check_destruction_allowed(engine, ctx.work_order_id, policy.dataset, [partition], column=policy.partition_column)
    live_root, arch_root = locations(lake_root, policy)
    copies = {"live": live_root.child(partition), "archive": arch_root.child(partition)}
    leftovers = [live_root.child(STAGING, partition), arch_root.child(STAGING, partition)]
    with partition_lock(engine, policy.dataset, partition):
        op = acquire(engine, "destroy", policy.dataset, partition, ctx)
        if op.state in DONE:
            return _summary(op)
        if op.state == "planned":
            present = {name: loc for name, loc in copies.items() if loc.exists()}
            if not present:
                return _summary(supersede(engine, op, "neither live nor archived: nothing left to destroy"))
            inventory: dict[str, Any] = {}
            for name, loc in present.items():
                entries = hash_files(loc, threads=threads)
                inventory[name] = {"location": loc.uri, "files": entries, "rows": sum(e["rows"] or 0 for e in entries),
                                   "bytes": sum(e["bytes"] for e in entries)}  # fmt: skip
            fp = fingerprinter(engine, min_length=policy.fingerprint_min_length, by=ctx.actor)
            values, columns = take_fingerprints(present, policy, fp, threads)
            _save_fingerprints(_store(lake_root, policy.dataset), partition, values)
            body = {"copies": inventory, "fingerprints": int(values.size), "fingerprint_columns": columns,
                    "fingerprint_key_version": fp.version, "method": METHOD_DELETE}  # fmt: skip
            op = set_state(engine, op, "inventoried", manifest=body,
                           rows=max(c["rows"] for c in inventory.values()),
                           size=sum(c["bytes"] for c in inventory.values()),
                           files=sum(len(c["files"]) for c in inventory.values()))  # fmt: skip
            hook("inventoried")
        if op.state == "inventoried":
            first = True
            for loc in [*copies.values(), *leftovers]:
                if loc.exists():
                    loc.delete()
                    if first:
                        first = False
                        hook("removing")
            hook("removed")
            still = [loc.uri for loc in [*copies.values(), *leftovers] if loc.exists()]
            if still:
                raise ArchiveError(f"{policy.dataset}/{partition}: could not remove {', '.join(still)}")
            inventory = op.manifest["copies"]
            op = finish(engine, op, "destroyed", ctx, {
                "rows": op.rows, "files": op.files, "bytes": op.bytes, "method": METHOD_DELETE,
                "copies": {n: {"location": c["location"], "rows": c["rows"], "files": len(c["files"]),
                               "manifest_sha256": manifest_digest(c["files"])} for n, c in inventory.items()},
                "fingerprints": op.manifest["fingerprints"],
            })  # fmt: skip
        return _summary(op)


# --- residue --------------------------------------------------------------------------


@dataclass(frozen=True)
class Residue:
    location: str
    kind: str  # path | parquet-statistics | parquet-values | text | fingerprints-missing
    where: str  # column, statistic or line numbers; never the value
    matches: int

    def as_json(self) -> dict[str, Any]:
        return {"location": self.location, "kind": self.kind, "where": self.where, "matches": self.matches}

    def __str__(self) -> str:
        return f"{self.location} ({self.kind}: {self.where})"


@dataclass
class ScanResult:
    residue: list[Residue] = field(default_factory=list)
    scanned: dict[str, int] = field(default_factory=lambda: {"parquet_footers": 0, "parquet_values": 0, "text": 0,
                                                             "office": 0, "skipped": 0})  # fmt: skip

    def as_json(self) -> dict[str, Any]:
        return {"residue": [r.as_json() for r in self.residue], "scanned": dict(self.scanned)}


def candidates(line: str, min_length: int) -> set[str]:
    """The whole tokens and fields of a line of text that could be a value."""
    found: set[str] = set()
    for token in _ASCII.findall(line):
        found.add(token)
        found.add(token.strip("._-+"))
    found.update(_CJK.findall(line))
    found.update(segment.strip() for segment in _FIELD_SPLIT.split(line))
    return {c for c in found if len(c) >= min_length}


def _hits(values: Iterable[str], fp: Fingerprinter, fingerprints: Any) -> int:
    import numpy as np

    digests = {fp.digest(v) for v in values}
    if not digests:
        return 0
    return int(np.isin(np.fromiter(digests, dtype=np.uint64, count=len(digests)), fingerprints).sum())


def _lines(loc: Location, path: str) -> Iterator[str]:
    pending = b""
    with loc.fs.open_input_stream(path, compression=None) as fin:
        while chunk := fin.read(1 << 20):
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for raw in complete:
                yield raw.decode("utf-8", errors="replace")
    if pending:
        yield pending.decode("utf-8", errors="replace")


def _scan_lines(lines: Iterable[str], fp: Fingerprinter, fingerprints: Any,
                batch: int = 4096) -> tuple[int, list[int]]:  # fmt: skip
    """Matches and the numbers of the lines that hold them; one membership test per batch of lines."""
    import numpy as np

    matches, where = 0, []
    digests: list[int] = []
    numbers: list[int] = []

    def flush() -> None:
        nonlocal matches
        if digests:
            hit = np.isin(np.array(digests, dtype=np.uint64), fingerprints)
            if hit.any():
                matches += int(hit.sum())
                where.extend(sorted({numbers[i] for i in np.flatnonzero(hit)}))
        digests.clear()
        numbers.clear()

    for number, line in enumerate(lines, 1):
        for value in candidates(line, fp.min_length):
            digests.append(fp.digest(value))
            numbers.append(number)
        if number % batch == 0:
            flush()
    flush()
    return matches, where


def _line_list(numbers: list[int]) -> str:
    shown = ", ".join(str(n) for n in numbers[:10])
    return f"line(s) {shown}" + (f" and {len(numbers) - 10} more" if len(numbers) > 10 else "")


def _stat_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="ignore")
    return str(value)


def _scan_parquet(loc: Location, path: str, uri: str, fp: Fingerprinter, fingerprints: Any, full: bool,
                  result: ScanResult) -> None:  # fmt: skip
    import pyarrow.parquet as pq

    try:
        meta = pq.read_metadata(path, filesystem=loc.fs)
    except (OSError, ValueError):
        result.scanned["skipped"] += 1
        return
    result.scanned["parquet_footers"] += 1
    hits: dict[str, int] = {}
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for c in range(group.num_columns):
            chunk = group.column(c)
            stats = chunk.statistics
            if stats is None or not stats.has_min_max:
                continue
            for label, value in (("min", stats.min), ("max", stats.max)):
                s = _stat_text(value)
                if s is not None and len(s.strip()) >= fp.min_length and _hits([s.strip()], fp, fingerprints):
                    key = f"{chunk.path_in_schema} {label}"
                    hits[key] = hits.get(key, 0) + 1
    if hits:
        where = "; ".join(f"column {k} statistics in {n} row group(s)" for k, n in sorted(hits.items()))
        result.residue.append(Residue(uri, "parquet-statistics", where, sum(hits.values())))
    if not full:
        return
    result.scanned["parquet_values"] += 1
    columns: dict[str, int] = {}
    for batch in pq.ParquetFile(path, filesystem=loc.fs).iter_batches(batch_size=65536):
        import pyarrow as pa

        for name, values in _string_values(pa.Table.from_batches([batch])):
            hit = _hits((s for v in values if v is not None and len(s := v.strip()) >= fp.min_length), fp, fingerprints)
            if hit:
                columns[name] = columns.get(name, 0) + hit
    if columns:
        where = "; ".join(f"column {c}: {n} value(s)" for c, n in sorted(columns.items()))
        result.residue.append(Residue(uri, "parquet-values", where, sum(columns.values())))


def _scan_office(loc: Location, path: str, uri: str, fp: Fingerprinter, fingerprints: Any,
                 result: ScanResult) -> None:  # fmt: skip
    with loc.fs.open_input_stream(path, compression=None) as fin:
        data = fin.read()
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = [n for n in archive.namelist() if n.endswith(".xml")]
        texts = {n: _TAGS.sub("\n", archive.read(n).decode("utf-8", errors="replace")) for n in members}
    except (zipfile.BadZipFile, OSError):
        result.scanned["skipped"] += 1
        return
    result.scanned["office"] += 1
    hit_members = {}
    for name, body in texts.items():
        matches, _ = _scan_lines(body.splitlines(), fp, fingerprints)
        if matches:
            hit_members[name] = matches
    if hit_members:
        where = "; ".join(f"{n}: {m} value(s)" for n, m in sorted(hit_members.items()))
        result.residue.append(Residue(uri, "text", where, sum(hit_members.values())))


def _looks_binary(loc: Location, path: str) -> bool:
    with loc.fs.open_input_stream(path, compression=None) as fin:
        return b"\x00" in fin.read(8192)


def scan_residue(roots: Sequence[Location], fp: Fingerprinter, fingerprints: Any, *, exclude: Sequence[str] = (),
                 full_scan: Sequence[str] = (), any_text: Sequence[str] = ()) -> ScanResult:  # fmt: skip
    """Look for the fingerprinted values under each root (recursively), skipping the paths
    under ``exclude``. Parquet files under ``full_scan`` prefixes are read whole; files
    under ``any_text`` prefixes (log folders) are read as text whatever their name."""
    from pyarrow import fs as pafs

    result = ScanResult()
    if not len(fingerprints):
        return result
    excluded = tuple(p.rstrip("/") + "/" for p in exclude)
    for root in roots:
        infos = root.fs.get_file_info(pafs.FileSelector(root.path, recursive=True, allow_not_found=True))
        for info in infos:
            if info.type != pafs.FileType.File or (info.path + "/").startswith(excluded):
                continue
            name, suffix = info.base_name, Path(info.base_name).suffix.lower()
            uri = f"{root.uri}/{info.path[len(root.path) + 1:]}"
            if suffix == ".crc":
                continue
            if name.endswith((".parquet", ".parq")):
                full = info.path.startswith(tuple(p.rstrip("/") + "/" for p in full_scan))
                _scan_parquet(root, info.path, uri, fp, fingerprints, full, result)
            elif suffix in ZIP_SUFFIXES:
                _scan_office(root, info.path, uri, fp, fingerprints, result)
            elif suffix in TEXT_SUFFIXES or (
                info.path.startswith(tuple(any_text)) and not _looks_binary(root, info.path)
            ):
                result.scanned["text"] += 1
                matches, lines = _scan_lines(_lines(root, info.path), fp, fingerprints)
                if matches:
                    result.residue.append(Residue(uri, "text", _line_list(lines), matches))
            else:
                result.scanned["skipped"] += 1
    return result


def _folder(spec: str) -> Location:
    return Location.of(spec if "://" in spec else Path(spec).resolve().as_uri())


# --- finalizing: key, residue, certificate --------------------------------------------


def certificate_location(lake_root: str, dataset: str, run_id: str) -> Location:
    return Location.of(f"{lake_root.rstrip('/')}/reports/security/destruction/{dataset}/{safe_name(run_id)}")


def read_certificate(loc: Location) -> dict[str, Any] | None:
    try:
        with loc.fs.open_input_stream(f"{loc.path}/certificate.json", compression=None) as fin:
            return json.loads(fin.read())
    except FileNotFoundError:
        return None


def _shred_key(engine: Engine, lake_root: str, policy: RetentionPolicy, config: RetentionConfig | None,
               by: str) -> dict[str, Any] | None:  # fmt: skip
    from govops.security import keys

    if not policy.key:
        return None
    others = [d for d in (config.key_users(policy.key) if config else [policy.dataset]) if d != policy.dataset]
    live_root, arch_root = locations(lake_root, policy)
    left = sorted(set(list_partitions(live_root, policy.partition_column))
                  | set(list_partitions(arch_root, policy.partition_column)))  # fmt: skip
    if others:
        return {"name": policy.key, "destroyed": False, "reason": f"also the key of {', '.join(others)}"}
    if left:
        return {"name": policy.key, "destroyed": False,
                "reason": f"{len(left)} partition(s) of the dataset remain and are encrypted with it"}  # fmt: skip
    with engine.begin() as conn:
        now = keys.destroy_key(conn, policy.key, by=by)
        states = keys.key_state(conn, policy.key)
    info: dict[str, Any] = {"name": policy.key, "destroyed": True, "method": "crypto-shredding",
                            "versions_destroyed": [v for v, s in states if s == "destroyed"],
                            "destroyed_by_this_run": now}  # fmt: skip
    if not states:
        info["note"] = "no version of this key is on record"
    return info


def finalize_destruction(
    engine: Engine, lake_root: str, policy: RetentionPolicy, ctx: RunContext, *, config: RetentionConfig | None = None,
    log_folders: Sequence[str] = (),
) -> dict[str, Any]:  # fmt: skip
    """After every partition of the run is destroyed: shred the key (if due), verify nothing
    remains, write the certificate (complete or not) with its audit entry. Raises
    DESTRUCTION_RESIDUE naming the places when something remains."""
    ops = operations(engine, dataset=policy.dataset, dag_id=ctx.dag_id, run_id=ctx.run_id, kind="destroy")
    pending = [o.partition for o in ops if o.state not in DONE]
    if pending:
        raise ArchiveError(f"{policy.dataset}: partition(s) {', '.join(pending)} are not destroyed yet")
    destroyed = [o for o in ops if o.state == "destroyed"]
    where = certificate_location(lake_root, policy.dataset, ctx.run_id)
    earlier = read_certificate(where)
    if earlier is not None and earlier.get("complete"):
        return earlier
    if not destroyed:
        return {"complete": True, "partitions": [], "note": "this run destroyed nothing"}
    approvals = check_destruction_allowed(engine, ctx.work_order_id, policy.dataset, [o.partition for o in destroyed],
                                          column=policy.partition_column)  # fmt: skip
    live_root, arch_root = locations(lake_root, policy)

    # 1. The destroyed paths are gone (rows left there count as rows after).
    residue: list[Residue] = []
    parts = []
    for op in destroyed:
        after = 0
        for loc in (live_root.child(op.partition), arch_root.child(op.partition),
                    live_root.child(STAGING, op.partition), arch_root.child(STAGING, op.partition)):  # fmt: skip
            if loc.exists():
                files = list_files(loc)
                after += sum(footer_rows(loc, f.path) for f in files if is_parquet(f.path))
                residue.append(Residue(loc.uri, "path", f"{len(files)} file(s) still there", len(files)))
        copies = op.manifest["copies"]
        parts.append({"partition": op.partition, "rows_before": op.rows, "rows_after": after,
                      "copies": {n: {"location": c["location"], "rows": c["rows"], "bytes": c["bytes"],
                                     "files": c["files"]} for n, c in copies.items()},
                      "fingerprints": op.manifest["fingerprints"],
                      "audit_seq": op.manifest.get("audit_seq")})  # fmt: skip

    # 2. Crypto-shredding.
    key = _shred_key(engine, lake_root, policy, config, ctx.actor)

    # 3. Residue of the values anywhere else.
    import numpy as np

    store = _store(lake_root, policy.dataset)
    by_version: dict[int, list[Any]] = {}
    for op in destroyed:
        values = _load_fingerprints(store, op.partition)
        if values is None:
            residue.append(Residue(f"{store.uri}/{op.partition}.npy", "fingerprints-missing",
                                   "the values cannot be looked for: the fingerprints are gone", 0))  # fmt: skip
        else:
            by_version.setdefault(op.manifest["fingerprint_key_version"], []).append(values)
    remaining = [loc.child(p).path for loc in (live_root, arch_root)
                 for p in list_partitions(loc, policy.partition_column)]  # fmt: skip
    lake = Location.of(lake_root)
    scan_cfg = config or RetentionConfig(path=Path("-"), policies={})
    logs = [_folder(f) for f in [*scan_cfg.log_folders, *log_folders]]
    scanned: dict[str, int] = {}
    for version, arrays in by_version.items():
        fp = fingerprinter(engine, min_length=policy.fingerprint_min_length, version=version)
        fingerprints = np.unique(np.concatenate(arrays))
        result = scan_residue(
            [lake, *logs], fp, fingerprints, exclude=[*remaining, store.path],
            full_scan=[f"{lake.path}/{z}" for z in scan_cfg.full_scan_zones], any_text=[log.path for log in logs],
        )  # fmt: skip
        residue += result.residue
        for k, v in result.scanned.items():
            scanned[k] = scanned.get(k, 0) + v

    complete = not residue
    now = datetime.now(UTC).isoformat(timespec="seconds")
    method = [METHOD_DELETE]
    if key and key["destroyed"]:
        method.append(f"crypto-shredding of data key {key['name']} (versions {key['versions_destroyed']})")
    columns = sorted({c for o in destroyed for c in o.manifest.get("fingerprint_columns", [])})
    rows_before = sum(p["rows_before"] or 0 for p in parts)
    cert: dict[str, Any] = {
        "title": "数据销毁证明 / Data destruction certificate",
        "certificate_version": CERTIFICATE_VERSION,
        "dataset": policy.dataset,
        "partitions": parts,
        "rows_before": rows_before,
        "rows_after": sum(p["rows_after"] for p in parts),
        "method": method,
        "key": key,
        "work_order_id": ctx.work_order_id,
        "requested_by": sorted({a.requested_by for a in approvals}),
        "approved_by": sorted({a.approved_by for a in approvals}),
        "approvals": [a.as_json() for a in approvals],
        "dag_id": ctx.dag_id,
        "run_id": ctx.run_id,
        "destroyed_at": max(o.finished_at for o in destroyed).astimezone(UTC).isoformat(timespec="seconds"),
        "issued_at": now,
        "verification": {"complete": complete, "residue": [r.as_json() for r in residue], "scanned": scanned,
                         "fingerprint_columns": columns, "log_folders": [log.uri for log in logs],
                         "values_checked": bool(columns)},
        "complete": complete,
    }
    body_sha = hashlib.sha256(json.dumps(cert, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    details = {"partitions": [p["partition"] for p in parts], "rows_before": rows_before,
               "rows_after": cert["rows_after"], "complete": complete, "residue_places": len(residue),
               "key": key and {"name": key["name"], "destroyed": key["destroyed"]}, "certificate_sha256": body_sha,
               **ctx.as_json()}  # fmt: skip
    with engine.begin() as conn:
        seq = audit.append(conn, actor=ctx.actor, action="destroy.certificate", dataset=policy.dataset, details=details)
        entry_hash = conn.execute(text("SELECT hash FROM govops.security_audit_log WHERE seq = :s"), {"s": seq})
        entry_hash = entry_hash.scalar_one()
    cert["audit"] = {"seq": seq, "hash": entry_hash, "certificate_sha256": body_sha}
    sign_certificate(cert)
    where.fs.create_dir(where.path, recursive=True)
    with where.fs.open_output_stream(f"{where.path}/certificate.json", compression=None) as out:
        out.write(json.dumps(cert, ensure_ascii=False, indent=2).encode())
    with where.fs.open_output_stream(f"{where.path}/certificate.html", compression=None) as out:
        out.write(certificate_html(cert).encode())
    cert["uri"] = f"{where.uri}/certificate.json"
    if not complete:
        raise ResidueFound(f"{policy.dataset}: destruction incomplete, residue in {len(residue)} place(s): "
                           + "; ".join(str(r) for r in residue[:10])
                           + f"; certificate {where.uri}/certificate.html")  # fmt: skip
    for op in destroyed:
        store.child(f"{op.partition}.npy").delete()
    return cert


def _certificate_message(cert: Mapping[str, Any]) -> bytes:
    """What the signature covers: every field but the signature, canonical JSON."""
    body = {k: v for k, v in cert.items() if k not in ("signature", "uri")}
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def sign_certificate(cert: dict[str, Any]) -> dict[str, Any]:
    """Adds ``signature``: HMAC-SHA256 under the current master key's certificate sub-key."""
    version, key = signing.signing_key(signing.DESTRUCTION_CERTIFICATE)
    cert["signature"] = {"algorithm": "HMAC-SHA256", "key": signing.MASTER_CONN_ID, "key_version": version,
                         "purpose": signing.DESTRUCTION_CERTIFICATE,
                         "value": signing.sign(key, _certificate_message(cert))}  # fmt: skip
    return cert


@dataclass(frozen=True)
class CertificateCheck:
    ok: bool
    reason: str
    dataset: str | None = None
    complete: bool | None = None
    key_version: int | None = None


def verify_certificate(source: str | Path | Mapping[str, Any]) -> CertificateCheck:
    """Check a certificate (a file path or URI, or its parsed JSON) with the master key alone:
    no database is read."""
    if isinstance(source, Mapping):
        cert: Any = source
    else:
        try:
            loc = Location.of(str(source) if "://" in str(source) else Path(source).resolve().as_uri())
            with loc.fs.open_input_stream(loc.path, compression=None) as fin:
                cert = json.loads(fin.read())
        except (OSError, ValueError) as exc:
            return CertificateCheck(False, f"{source}: not a readable certificate ({exc})")
    if not isinstance(cert, Mapping):
        return CertificateCheck(False, f"{source}: not a certificate (a JSON object is expected)")
    dataset, complete = cert.get("dataset"), cert.get("complete")
    sig = cert.get("signature")
    if not isinstance(sig, Mapping) or not isinstance(sig.get("value"), str):
        return CertificateCheck(False, f"unsigned (certificate_version {cert.get('certificate_version')}): its "
                                       "fields cannot be checked", dataset, complete)  # fmt: skip
    if sig.get("algorithm") != "HMAC-SHA256" or sig.get("purpose") != signing.DESTRUCTION_CERTIFICATE:
        return CertificateCheck(False, f"unknown signature {sig.get('algorithm')} / {sig.get('purpose')}", dataset,
                                complete)  # fmt: skip
    version = sig.get("key_version")
    try:
        _, key = signing.signing_key(signing.DESTRUCTION_CERTIFICATE, int(version))
    except (TypeError, ValueError, signing.KeyManagementError) as exc:
        return CertificateCheck(False, f"cannot be checked: {exc}", dataset, complete, None)
    if not signing.same(signing.sign(key, _certificate_message(cert)), sig["value"]):
        return CertificateCheck(False, "the signature does not match: the certificate was changed after it was "
                                       "issued, or signed with another key", dataset, complete, int(version))
    return CertificateCheck(True, f"signed with master key version {version}", dataset, complete, int(version))


def certificate_html(cert: dict[str, Any]) -> str:
    e = html.escape
    status = "完整 complete" if cert["complete"] else "不完整 incomplete: residue found"
    rows = []
    for p in cert["partitions"]:
        for copy, c in p["copies"].items():
            for f in c["files"]:
                count = "" if f["rows"] is None else f"{f['rows']:,}"
                rows.append(f"<tr><td>{e(p['partition'])}</td><td>{e(copy)}</td><td>{e(f['path'])}</td>"
                            f"<td class=n>{f['bytes']:,}</td><td class=n>{count}</td>"
                            f"<td><code>{e(f['sha256'])}</code></td></tr>")  # fmt: skip
    parts = "".join(f"<tr><td>{e(p['partition'])}</td><td class=n>{(p['rows_before'] or 0):,}</td>"
                    f"<td class=n>{p['rows_after']:,}</td><td class=n>{p['fingerprints']:,}</td></tr>"
                    for p in cert["partitions"])  # fmt: skip
    residue = "".join(f"<tr><td>{e(r['location'])}</td><td>{e(r['kind'])}</td><td>{e(r['where'])}</td>"
                      f"<td class=n>{r['matches']}</td></tr>" for r in cert["verification"]["residue"])  # fmt: skip
    key = cert.get("key")
    if not key:
        key_text = "—"
    elif key["destroyed"]:
        key_text = f"{e(key['name'])}: destroyed (crypto-shredding), versions {key['versions_destroyed']}"
    else:
        key_text = f"{e(key['name'])}: kept ({e(key['reason'])})"
    audit_, sig = cert.get("audit") or {}, cert.get("signature") or {}
    return f"""<!doctype html><html lang=zh><head><meta charset=utf-8><title>数据销毁证明 {e(cert['dataset'])}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1100px}} td,th{{padding:3px 8px;border-bottom:1px solid #ddd;
text-align:left}} .n{{text-align:right}} table{{border-collapse:collapse;margin-bottom:1.5em}} code{{font-size:80%}}
.ok{{color:#2a9d8f}} .bad{{color:#e76f51}}</style></head><body>
<h1>数据销毁证明 · Data destruction certificate</h1>
<p id=status class={'ok' if cert['complete'] else 'bad'}><b>{status}</b></p>
<table>
<tr><th>数据集 dataset</th><td id=dataset>{e(cert['dataset'])}</td></tr>
<tr><th>销毁前/后记录数 rows before / after</th><td id=rows>{cert['rows_before']:,} / {cert['rows_after']:,}</td></tr>
<tr><th>方式 method</th><td>{'<br>'.join(e(m) for m in cert['method'])}</td></tr>
<tr><th>密钥 key</th><td>{key_text}</td></tr>
<tr><th>工单 work order</th><td>{e(str(cert['work_order_id']))}</td></tr>
<tr><th>申请人 requested by</th><td>{e(', '.join(cert['requested_by']))}</td></tr>
<tr><th>审批人 approved by</th><td id=approver>{e(', '.join(cert['approved_by']))}</td></tr>
<tr><th>运行 run</th><td>{e(cert['dag_id'])} / {e(cert['run_id'])}</td></tr>
<tr><th>出具时间 issued at</th><td>{e(cert['issued_at'])}</td></tr>
<tr><th>审计日志 audit entry</th>
<td id=audit>seq {audit_.get('seq')} · <code>{e(str(audit_.get('hash')))}</code></td></tr>
<tr><th>签名 signature</th><td id=signature>{e(str(sig.get('algorithm')))}, master key version
{e(str(sig.get('key_version')))} · <code>{e(str(sig.get('value')))}</code></td></tr>
</table>
<h2>分区 Partitions</h2><table><tr><th>partition</th><th>rows before</th><th>rows after</th><th>fingerprints</th></tr>
{parts}</table>
<h2>残留检查 Residue check</h2>
<p>scanned: {e(json.dumps(cert['verification']['scanned']))}; fingerprint columns:
{e(', '.join(cert['verification']['fingerprint_columns']) or '—')}</p>
<table id=residue><tr><th>location</th><th>kind</th><th>where</th><th>matches</th></tr>{residue or
'<tr><td colspan=4>none</td></tr>'}</table>
<h2>已销毁文件 Files destroyed</h2><table><tr><th>partition</th><th>copy</th><th>file</th><th>bytes</th><th>rows</th>
<th>sha256</th></tr>{''.join(rows)}</table>
</body></html>"""
