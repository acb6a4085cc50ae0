"""Security assessment (catalog item 19, 数据安全评估审核服务): findings with their
rectification record, the storage distribution of the lake, and the access grants it reviews.

**Input.** The manifest of ``spark_jobs/assess_security.py``: per published dataset of the
zones scanned, its rows, files, bytes, columns, commit markers and (sharing and open zones)
the content detectors' figures. :func:`assess` joins it with the labels
(``govops.security.labeling.current_labels``), the masking execution log and the grants.

**Findings** (kind, dataset, subject, severity, detail; one per (kind, dataset, subject)):

* ``UNMASKED_SENSITIVE`` (subject: the column): a column of the sharing or open zone that is
  sensitive (its label's grade is core or important, or its level is one the grading table
  counts as sensitive, such as the personal information of general L3; or the detectors
  found a data type in its values) and not controlled. A column is controlled when the latest masking run whose
  output is the dataset recorded a rule other than ``keep`` for it, and that run is the one
  the dataset's commit markers name (``run.dag_id`` / ``run.run_id``): a dataset overwritten
  after masking is not controlled any more. High when the label's or the detected type's
  grade is core or important, else medium.
* ``UNLABELED_DATASET`` (subject ''): a dataset of raw, clean, sharing or open without any
  label; medium in sharing and open, low in raw and clean.
* ``LABEL_STALE`` (subject: the column): a label for a column the dataset no longer has, or
  a column of a labelled dataset without a label; low.
* ``STALE_ACCESS`` (subject ``principal:privilege``): a live grant whose last access, or, if
  never used, whose grant, is more than ``stale_days`` (default 90) before the assessment;
  medium.
* ``ACCESS_TO_MISSING_DATASET`` (subject ``principal:privilege``): a live grant on a dataset
  the scan did not find; medium. Such a grant is not judged stale as well.
* ``UNREADABLE_DATASET`` (subject ''): a dataset (not of the archive zone, whose packages
  need not be Parquet) that could not be read as Parquet; medium.

**Scope.** A run may be limited to zones and ``<zone>/<path>`` prefixes; only the findings
of datasets (and grants on datasets) in its scope are judged: the others are left as they
are, neither seen nor resolved.

**Lifecycle** (the rectification record, also kept event by event in ``history``):

* a finding not known before is inserted ``open``;
* an ``open`` finding found again stays ``open`` (``last_seen_run_id`` moves on);
* a person marks it fixed (:func:`mark_fixed`, audited): ``fixed``;
* a ``fixed`` finding the next assessment no longer finds becomes ``reverified`` (复核), with
  that run; one it finds again is reopened (``open`` again, the fix kept in ``history`` and
  named in ``detail``), as is a ``reverified`` finding that comes back;
* an ``open`` finding that an assessment no longer finds although nobody recorded a fix
  (the data owner deleted the dataset, a grant was revoked, the column was masked) is
  ``reverified`` too, automatically, with no ``fixed_by`` and the ``fix_note`` "resolved
  without a recorded fix" (event ``resolved``): the record shows both that the problem is
  gone and that nobody documented its rectification.

A re-run of an assessment run (same dag_id and run_id) keeps its ``security_assessment_run``
row and applies the same transitions again, which change nothing when the lake and the
database have not changed: no duplicate findings, no duplicate history.

**Storage distribution**: rows, files and bytes by zone, by grade (a dataset's grade is the
highest grade among its labels, else ``unlabeled``) and by dataset.

**Access grants**: :func:`grant`, :func:`record_access`, :func:`revoke` (all audited) and
:func:`ensure_sample_grants` for the demo. Findings, details and the summary hold names,
counts and ratios, never a value of the data.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, text

from govops.errors import CodedError
from govops.security import audit

SERVICE_ITEM = "19"
UNIT = "record"
ZONES = ("raw", "clean", "sharing", "open", "archive")
LABELED_ZONES = ("raw", "clean", "sharing", "open")
EXPOSED_ZONES = ("sharing", "open")
GRADES = ("core", "important", "general")  # highest first
SENSITIVE_GRADES = frozenset({"core", "important"})
UNLABELED = "unlabeled"
DEFAULT_STALE_DAYS = 90
SEVERITIES = ("high", "medium", "low")
STATUSES = ("open", "fixed", "reverified")

KINDS: dict[str, str] = {  # kind -> what the data owner reads in the issue list
    "UNMASKED_SENSITIVE": "共享/开放区敏感字段未脱敏",
    "UNLABELED_DATASET": "数据集未分类分级",
    "LABEL_STALE": "分类分级标签与字段不一致",
    "STALE_ACCESS": "长期未使用的访问授权",
    "ACCESS_TO_MISSING_DATASET": "授权指向不存在的数据集",
    "UNREADABLE_DATASET": "数据集无法读取",
}
# Accounts that are not one person: grants go to named accounts only.
SHARED_ACCOUNTS = frozenset({"*", "all", "public", "anonymous", "guest", "shared", "everyone", "admin", "root"})
REOPENED = " [reopened: "  # the note a reopened finding's detail carries
_LOCK = 0x19_A55E55  # pg_advisory_xact_lock key: one assessment applies its findings at a time


class AssessmentError(CodedError, ValueError):
    code = "ASSESSMENT_ERROR"


class AccessError(AssessmentError):
    code = "ACCESS_GRANT_REFUSED"


class FindingError(AssessmentError):
    code = "FINDING_REFUSED"


# --- scope ---------------------------------------------------------------------------


def parse_zones(value: str | Sequence[str] | None) -> list[str]:
    """Zones to scan, in the lake's order; all when none are given."""
    items = [z.strip() for z in (value.split(",") if isinstance(value, str) else value or []) if z.strip()]
    unknown = sorted(set(items) - set(ZONES))
    if unknown:
        raise AssessmentError(f"zones: unknown zone(s) {', '.join(unknown)}; the zones are {', '.join(ZONES)}")
    return [z for z in ZONES if z in items] if items else list(ZONES)


def parse_prefixes(value: str | Sequence[str] | None, zones: Sequence[str]) -> list[str]:
    """``<zone>/<path>`` prefixes (whole path segments) to limit the scan to; none = all."""
    items = [p.strip().strip("/") for p in (value.split(",") if isinstance(value, str) else value or [])]
    prefixes = [p for p in items if p]
    for p in prefixes:
        if p.split("/")[0] not in ZONES:
            raise AssessmentError(f"prefixes: {p!r} must start with a zone ({', '.join(ZONES)})")
        if p.split("/")[0] not in zones:
            raise AssessmentError(f"prefixes: {p!r} is in a zone that is not scanned ({', '.join(zones)})")
    return prefixes


def in_scope(dataset: str, zones: Sequence[str], prefixes: Sequence[str]) -> bool:
    if dataset.split("/")[0] not in zones:
        return False
    return not prefixes or any(dataset == p or dataset.startswith(p + "/") for p in prefixes)


# --- findings ------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    kind: str
    dataset: str
    subject: str
    severity: str
    detail: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.kind, self.dataset, self.subject)


@dataclass(frozen=True)
class ColumnLabel:
    grade: str
    level: str
    version: int


@dataclass(frozen=True)
class Masking:
    """The masking state of one published dataset of the sharing or open zone."""

    run: int | None = None  # the latest masking run whose output is the dataset
    run_name: str = ""  # its dag_id/run_id
    named_in_marker: bool = False  # the dataset's commit markers name that run
    rules: Mapping[str, str] = field(default_factory=dict)  # column -> rule it recorded

    def controlled(self, column: str) -> bool:
        return self.named_in_marker and self.rules.get(column, "keep") != "keep"

    def why_not(self, column: str) -> str:
        if self.run is None:
            return "no masking run published this dataset"
        if not self.named_in_marker:
            return f"the published version was not written by masking run {self.run_name} (the latest for it)"
        if column in self.rules:
            return f"masking run {self.run_name} kept it in clear (rule keep)"
        return f"masking run {self.run_name} recorded no rule for it"


@dataclass(frozen=True)
class Grant:
    id: int
    principal: str
    dataset: str
    privilege: str
    granted_at: datetime
    last_access_at: datetime | None

    @property
    def subject(self) -> str:
        return f"{self.principal}:{self.privilege}"


def _detected(detection: Mapping[str, Any] | None) -> bool:
    return bool(detection and detection.get("data_type") and detection.get("matches", 0) > 0)


def _type_grade(grading: Any, data_type: str) -> str | None:
    try:
        return grading.label_for(data_type)[1] if grading is not None else None
    except (KeyError, ValueError):
        return None


def _level_sensitive(grading: Any, level: str) -> bool:
    try:
        return bool(grading is not None and grading.is_sensitive(level))
    except (KeyError, ValueError):
        return False


def evaluate(
    datasets: Sequence[Mapping[str, Any]], labels: Mapping[str, Mapping[str, ColumnLabel]],
    masking: Mapping[str, Masking], grants: Iterable[Grant], *, zones: Sequence[str], prefixes: Sequence[str],
    as_of: datetime, stale_days: int = DEFAULT_STALE_DAYS, grading: Any = None,
) -> list[Finding]:  # fmt: skip
    """The findings of one assessment (pure: the inputs are what :func:`assess` loads)."""
    found: list[Finding] = []
    present = {d["dataset"] for d in datasets}
    for d in datasets:
        name, zone, columns = d["dataset"], d["zone"], list(d.get("columns") or [])
        if d.get("error"):
            if zone != "archive":
                found.append(Finding("UNREADABLE_DATASET", name, "", "medium", d["error"]))
            continue
        own = labels.get(name, {})
        if zone in LABELED_ZONES and not own:
            found.append(Finding("UNLABELED_DATASET", name, "", "medium" if zone in EXPOSED_ZONES else "low",
                                 f"{len(columns)} column(s), {d['rows']:,} row(s), no classification label"))
        if own:
            for column in sorted(set(own) - set(columns)):
                found.append(Finding("LABEL_STALE", name, column, "low",
                                     f"label v{own[column].version} for a column the dataset no longer has"))
            for column in [c for c in columns if c not in own]:
                found.append(Finding("LABEL_STALE", name, column, "low", "column without a classification label"))
        if zone not in EXPOSED_ZONES:
            continue
        state = masking.get(name, Masking())
        detections = d.get("detections") or {}
        for column in columns:
            label, detection = own.get(column), detections.get(column)
            by_label = label is not None and (label.grade in SENSITIVE_GRADES or _level_sensitive(grading, label.level))
            by_content = _detected(detection)
            if not (by_label or by_content) or state.controlled(column):
                continue
            why: list[str] = []
            high = by_label and label.grade in SENSITIVE_GRADES
            if by_label:
                why.append(f"grade {label.grade} ({label.level}) by label v{label.version}")
            if by_content:
                high = high or _type_grade(grading, detection["data_type"]) in SENSITIVE_GRADES
                why.append(f"{detection['data_type']} found in {detection['matches']:,} of "
                           f"{detection['non_null']:,} values ({detection['match_ratio']:.1%})")  # fmt: skip
            found.append(Finding("UNMASKED_SENSITIVE", name, column, "high" if high else "medium",
                                 f"{'; '.join(why)}; not masked: {state.why_not(column)}"))
    cutoff = as_of - timedelta(days=stale_days)
    for g in grants:
        if not in_scope(g.dataset, zones, prefixes):
            continue
        if g.dataset not in present:
            found.append(Finding("ACCESS_TO_MISSING_DATASET", g.dataset, g.subject, "medium",
                                 f"{g.privilege} granted to {g.principal} on {g.granted_at:%Y-%m-%d}; "
                                 "the dataset does not exist in the lake"))  # fmt: skip
        elif g.last_access_at is not None and g.last_access_at < cutoff:
            days = (as_of - g.last_access_at).days
            found.append(Finding("STALE_ACCESS", g.dataset, g.subject, "medium",
                                 f"last access {g.last_access_at:%Y-%m-%d}, {days} days ago (limit {stale_days})"))
        elif g.last_access_at is None and g.granted_at < cutoff:
            days = (as_of - g.granted_at).days
            found.append(Finding("STALE_ACCESS", g.dataset, g.subject, "medium",
                                 f"never used since granted on {g.granted_at:%Y-%m-%d}, {days} days ago "
                                 f"(limit {stale_days})"))  # fmt: skip
    keys = Counter(f.key for f in found)
    doubled = [k for k, n in keys.items() if n > 1]
    if doubled:  # one finding per key, or the upsert would lose one
        raise AssessmentError(f"findings repeat a (kind, dataset, subject): {doubled[:5]}")
    return found


def dataset_grade(own: Mapping[str, ColumnLabel]) -> str:
    grades = {label.grade for label in own.values()}
    return next((g for g in GRADES if g in grades), UNLABELED)


def distribution(datasets: Sequence[Mapping[str, Any]], labels: Mapping[str, Mapping[str, ColumnLabel]],
                 findings: Sequence[Finding] = (), grading: Any = None) -> dict[str, Any]:  # fmt: skip
    """Rows, files and bytes by zone, by grade, by zone and grade, and per dataset (with its
    sensitive columns by label, and its unmasked ones)."""
    unmasked = Counter(f.dataset for f in findings if f.kind == "UNMASKED_SENSITIVE")
    by_zone: dict[str, dict[str, int]] = {}
    by_grade: dict[str, dict[str, int]] = {}
    by_zone_grade: dict[str, dict[str, dict[str, int]]] = {}
    rows = []
    for d in sorted(datasets, key=lambda d: d["dataset"]):
        own = labels.get(d["dataset"], {})
        grade = dataset_grade(own)
        present = [own[c] for c in d.get("columns") or [] if c in own]
        sensitive = sum(1 for label in present
                        if label.grade in SENSITIVE_GRADES or _level_sensitive(grading, label.level))  # fmt: skip
        figures = {"datasets": 1, "rows": int(d["rows"]), "files": int(d["files"]), "bytes": int(d["bytes"])}
        for bucket in (by_zone.setdefault(d["zone"], {}), by_grade.setdefault(grade, {}),
                       by_zone_grade.setdefault(d["zone"], {}).setdefault(grade, {})):  # fmt: skip
            for k, v in figures.items():
                bucket[k] = bucket.get(k, 0) + v
        rows.append({"dataset": d["dataset"], "zone": d["zone"], "grade": grade, "rows": figures["rows"],
                     "files": figures["files"], "bytes": figures["bytes"], "columns": len(d.get("columns") or []),
                     "sensitive_columns": sensitive, "unmasked_columns": unmasked.get(d["dataset"], 0)})  # fmt: skip
    order = {g: i for i, g in enumerate((*GRADES, UNLABELED))}
    return {
        "by_zone": {z: by_zone[z] for z in ZONES if z in by_zone},
        "by_grade": {g: by_grade[g] for g in sorted(by_grade, key=order.get)},
        "by_zone_grade": {z: {g: by_zone_grade[z][g] for g in sorted(by_zone_grade[z], key=order.get)}
                          for z in ZONES if z in by_zone_grade},
        "datasets": rows,
    }


# --- loading what the findings are judged against --------------------------------------


def load_labels(conn: Connection, datasets: Iterable[str]) -> dict[str, dict[str, ColumnLabel]]:
    from govops.security.labeling import current_labels

    found = {}
    for name in datasets:
        own = current_labels(conn, name)
        if own:
            found[name] = {c: ColumnLabel(label.grade, label.level, label.version) for c, label in own.items()}
    return found


def _names_run(marker: Mapping[str, Any] | None, dag_id: str, run_id: str) -> bool:
    run = (marker or {}).get("run")
    return isinstance(run, Mapping) and run.get("dag_id") == dag_id and run.get("run_id") == run_id


def load_masking(conn: Connection, datasets: Iterable[Mapping[str, Any]]) -> dict[str, Masking]:
    states = {}
    for d in datasets:
        if d["zone"] not in EXPOSED_ZONES:
            continue
        run = conn.execute(
            text("""SELECT id, dag_id, run_id FROM govops.security_masking_run WHERE output_dataset = :o
                     ORDER BY finished_at DESC, id DESC LIMIT 1"""),
            {"o": d["dataset"]},
        ).first()  # fmt: skip
        if run is None:
            states[d["dataset"]] = Masking()
            continue
        rules = dict(conn.execute(
            text("SELECT column_name, rule FROM govops.security_masking_column WHERE masking_run_id = :id"),
            {"id": run.id},
        ).all())  # fmt: skip
        markers = d.get("markers") or []
        named = bool(markers) and all(_names_run(m, run.dag_id, run.run_id) for m in markers)
        states[d["dataset"]] = Masking(run.id, f"{run.dag_id}/{run.run_id}", named, rules)
    return states


def load_grants(conn: Connection) -> list[Grant]:
    return [Grant(*r) for r in conn.execute(text(
        """SELECT id, principal, dataset, privilege, granted_at, last_access_at FROM govops.security_access_grant
            WHERE revoked_at IS NULL ORDER BY id"""))]  # fmt: skip


def _grading() -> Any:
    from govops.security import grading

    return grading.load()


# --- the assessment ---------------------------------------------------------------------


def scan_of(manifest: Mapping[str, Any]) -> Mapping[str, Any]:
    scan = next((o for o in manifest.get("outputs", []) if o.get("kind") == "security_scan"), None)
    if scan is None:
        raise AssessmentError(f"manifest {manifest.get('manifest_uri', '')}: no security_scan output (not a scan?)")
    return scan


def _event(event: str, at: datetime, run: int | None = None, **more: Any) -> dict[str, Any]:
    return {"event": event, "at": at.isoformat(timespec="seconds"), **({"run": run} if run else {}), **more}


def _apply(conn: Connection, run: int, found: Sequence[Finding], scope: tuple[list[str], list[str]],
           now: datetime) -> None:  # fmt: skip
    """Insert, keep, reopen, reverify and resolve findings."""
    existing = {(r.kind, r.dataset, r.subject): r for r in conn.execute(text(
        "SELECT * FROM govops.security_finding ORDER BY id FOR UPDATE"))}  # fmt: skip
    current = {f.key: f for f in found}
    for key, f in current.items():
        e = existing.get(key)
        params = {"kind": f.kind, "dataset": f.dataset, "subject": f.subject, "severity": f.severity,
                  "detail": f.detail, "run": run}  # fmt: skip
        if e is None:
            conn.execute(text(
                """INSERT INTO govops.security_finding (kind, dataset, subject, severity, detail, status,
                          found_run_id, last_seen_run_id, history)
                   VALUES (:kind, :dataset, :subject, :severity, :detail, 'open', :run, :run, CAST(:h AS jsonb))"""),
                {**params, "h": json.dumps([_event("found", now, run)])})  # fmt: skip
        elif e.status == "open":
            # A reopened finding keeps saying so for as long as it stays open.
            reopened = e.detail.find(REOPENED)
            params["detail"] = f.detail + (e.detail[reopened:] if reopened >= 0 else "")
            conn.execute(text(
                """UPDATE govops.security_finding SET severity = :severity, detail = :detail,
                          last_seen_run_id = GREATEST(last_seen_run_id, :run) WHERE id = :id"""),
                {**params, "id": e.id})  # fmt: skip
        else:  # fixed or reverified, and here again
            if e.status == "fixed":
                was = f"fixed by {e.fixed_by} on {e.fixed_at:%Y-%m-%d}"
            else:
                was = f"reverified on {e.reverified_at:%Y-%m-%d}"
            detail = f"{f.detail}{REOPENED}{was}, found again by assessment run {run}]"
            conn.execute(text(
                """UPDATE govops.security_finding SET status = 'open', severity = :severity, detail = :detail,
                          last_seen_run_id = :run, fixed_at = NULL, fixed_by = NULL, fix_note = NULL,
                          reverified_at = NULL, reverified_run_id = NULL,
                          history = history || CAST(:h AS jsonb) WHERE id = :id"""),
                {**params, "detail": detail, "id": e.id,
                 "h": json.dumps([_event("reopened", now, run, was=e.status)])})  # fmt: skip
    zones, prefixes = scope
    for key, e in existing.items():
        if key in current or e.status == "reverified" or not in_scope(e.dataset, zones, prefixes):
            continue
        if e.status == "fixed":
            event, note = "reverified", e.fix_note
        else:  # open, gone without a recorded fix
            event, note = "resolved", f"resolved without a recorded fix: not found by assessment run {run}"
        conn.execute(text(
            """UPDATE govops.security_finding SET status = 'reverified', reverified_at = :now,
                      reverified_run_id = :run, fix_note = :note, history = history || CAST(:h AS jsonb)
                WHERE id = :id"""),
            {"now": now, "run": run, "note": note, "id": e.id, "h": json.dumps([_event(event, now, run)])})  # fmt: skip


def changes_of(conn: Connection, run: int, present: int) -> dict[str, int]:
    """What the run changed, from the findings' history (so a re-run reports the same)."""
    events = dict(conn.execute(text(
        """SELECT e->>'event', count(*) FROM govops.security_finding f, jsonb_array_elements(f.history) e
            WHERE e->>'run' = :run GROUP BY 1"""), {"run": str(run)}).all())  # fmt: skip
    new, reopened = int(events.get("found", 0)), int(events.get("reopened", 0))
    return {"new": new, "still_open": present - new - reopened, "reopened": reopened,
            "reverified": int(events.get("reverified", 0)), "resolved": int(events.get("resolved", 0))}  # fmt: skip


def status_counts(conn: Connection) -> dict[str, int]:
    counted = dict(conn.execute(text("SELECT status, count(*) FROM govops.security_finding GROUP BY status")).all())
    return {s: int(counted.get(s, 0)) for s in STATUSES}


def assess(
    engine: Engine, manifest: Mapping[str, Any], *, work_order_id: str | None = None,
    stale_days: int = DEFAULT_STALE_DAYS, as_of: datetime | None = None, by: str = "govops",
) -> dict[str, Any]:  # fmt: skip
    """Judge one scan: the run row (one per dag_id and run_id), the findings and their
    lifecycle, the storage distribution; audited. Returns the run's summary."""
    if not isinstance(stale_days, int) or isinstance(stale_days, bool) or stale_days < 1:
        raise AssessmentError(f"stale_days must be a whole number of days, at least 1, got {stale_days!r}")
    scan, identity = scan_of(manifest), manifest["run"]
    as_of = as_of or datetime.now(UTC)
    if as_of.tzinfo is None:
        raise AssessmentError(f"as_of {as_of.isoformat()} has no time zone")
    datasets = scan["datasets"]
    zones, prefixes = list(scan["zones"]), list(scan["prefixes"])
    grading = _grading()
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK})
        values = {"dag": identity["dag_id"], "run": identity["run_id"], "datasets": len(datasets),
                  "rows": scan["rows"], "wo": work_order_id, "as_of": as_of}  # fmt: skip
        # A re-run keeps its row (looked up first, so run numbers have no gaps).
        run = conn.execute(text("SELECT id FROM govops.security_assessment_run WHERE dag_id = :dag AND run_id = :run"),
                           values).scalar()  # fmt: skip
        if run is None:
            run = conn.execute(text(
                """INSERT INTO govops.security_assessment_run (dag_id, run_id, datasets, rows_assessed, findings_open,
                          summary, work_order_id, assessed_at)
                   VALUES (:dag, :run, :datasets, :rows, 0, '{}'::jsonb, :wo, :as_of) RETURNING id"""),
                values).scalar_one()  # fmt: skip
        else:
            conn.execute(text(
                """UPDATE govops.security_assessment_run SET datasets = :datasets, rows_assessed = :rows,
                          work_order_id = :wo, assessed_at = :as_of, finished_at = now() WHERE id = :id"""),
                {**values, "id": run})  # fmt: skip
        labels = load_labels(conn, [d["dataset"] for d in datasets])
        found = evaluate(datasets, labels, load_masking(conn, datasets), load_grants(conn), zones=zones,
                         prefixes=prefixes, as_of=as_of, stale_days=stale_days, grading=grading)  # fmt: skip
        _apply(conn, run, found, (zones, prefixes), now)
        changes = changes_of(conn, run, len(found))
        counts = status_counts(conn)
        summary = {
            "run": run, "dag_id": identity["dag_id"], "run_id": identity["run_id"], "work_order_id": work_order_id,
            "as_of": as_of.isoformat(), "stale_days": stale_days, "zones": zones, "prefixes": prefixes,
            "datasets": len(datasets), "rows": scan["rows"], "bytes": scan["bytes"],
            "distribution": distribution(datasets, labels, found, grading),
            "findings": {"total": len(found), "by_kind": dict(sorted(Counter(f.kind for f in found).items())),
                         "by_severity": {s: n for s in SEVERITIES if (n := sum(f.severity == s for f in found))},
                         "by_kind_severity": _by_kind_severity(found)},
            "changes": changes, "status": counts,
        }  # fmt: skip
        conn.execute(text(
            """UPDATE govops.security_assessment_run SET findings_open = :open, summary = CAST(:s AS jsonb)
                WHERE id = :id"""),
            {"open": counts["open"], "s": json.dumps(summary, ensure_ascii=False), "id": run})  # fmt: skip
        audit.append(conn, actor=by, action="assessment.run", dataset=None, details={
            "run": f"{identity['dag_id']}/{identity['run_id']}", "assessment_run": run, "datasets": len(datasets),
            "rows": scan["rows"], "findings": len(found), "changes": changes, "status": counts,
        })  # fmt: skip
    return summary


def _by_kind_severity(found: Sequence[Finding]) -> dict[str, dict[str, int]]:
    table: dict[str, dict[str, int]] = {}
    for f in found:
        table.setdefault(f.kind, {}).setdefault(f.severity, 0)
        table[f.kind][f.severity] += 1
    return {k: table[k] for k in sorted(table)}


def mark_fixed(engine: Engine, finding_id: int, *, by: str, note: str) -> None:
    """A person records the rectification of an open finding; the next assessment re-verifies it."""
    if not (by or "").strip():
        raise FindingError(f"finding {finding_id}: say who fixed it")
    if not (note or "").strip():
        raise FindingError(f"finding {finding_id}: say what was done (the rectification note)")
    now = datetime.now(UTC)
    with engine.begin() as conn:
        row = conn.execute(
            text("SELECT kind, dataset, subject, status FROM govops.security_finding WHERE id = :id FOR UPDATE"),
            {"id": finding_id},
        ).first()
        if row is None:
            raise FindingError(f"finding {finding_id} does not exist")
        if row.status != "open":
            raise FindingError(f"finding {finding_id} ({row.kind} {row.dataset} {row.subject}) is {row.status}, "
                               "only an open finding can be marked fixed")  # fmt: skip
        conn.execute(text(
            """UPDATE govops.security_finding SET status = 'fixed', fixed_at = :now, fixed_by = :by, fix_note = :note,
                      history = history || CAST(:h AS jsonb) WHERE id = :id"""),
            {"now": now, "by": by.strip(), "note": note.strip(), "id": finding_id,
             "h": json.dumps([_event("fixed", now, by=by.strip(), note=note.strip())], ensure_ascii=False)},
        )  # fmt: skip
        audit.append(conn, actor=by.strip(), action="assessment.finding_fixed", dataset=row.dataset, details={
            "finding": finding_id, "kind": row.kind, "subject": row.subject, "note": note.strip(),
        })  # fmt: skip


def findings(engine: Engine | Connection, *, status: str | None = None) -> list[dict[str, Any]]:
    """The findings with their rectification record, open ones first, then by severity."""
    sql = """SELECT id, kind, dataset, subject, severity, detail, status, found_run_id, last_seen_run_id, found_at,
                    fixed_at, fixed_by, fix_note, reverified_at, reverified_run_id, history
               FROM govops.security_finding WHERE (CAST(:status AS text) IS NULL OR status = :status)
              ORDER BY array_position(ARRAY['open','fixed','reverified'], status),
                       array_position(ARRAY['high','medium','low'], severity), kind, dataset, subject"""
    if isinstance(engine, Connection):
        return [dict(r._mapping) for r in engine.execute(text(sql), {"status": status})]
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(sql), {"status": status})]


def runs(engine: Engine | Connection, limit: int = 30) -> list[dict[str, Any]]:
    """The latest assessment runs, oldest first (for the status-over-runs chart)."""
    sql = """SELECT * FROM (SELECT id, dag_id, run_id, datasets, rows_assessed, findings_open, summary, report_uri,
                                   assessed_at, finished_at FROM govops.security_assessment_run
                             ORDER BY id DESC LIMIT :n) r ORDER BY id"""
    if isinstance(engine, Connection):
        return [dict(r._mapping) for r in engine.execute(text(sql), {"n": limit})]
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(text(sql), {"n": limit})]


# --- access grants ----------------------------------------------------------------------


def _check_grant(principal: str, dataset: str, privilege: str) -> None:
    if not (principal or "").strip() or principal.strip().lower() in SHARED_ACCOUNTS:
        raise AccessError(f"grant on {dataset}: {principal!r} is not a named account")
    if (dataset or "").split("/")[0] not in ZONES or "/" not in dataset.strip("/"):
        raise AccessError(f"grant to {principal}: dataset {dataset!r} must be <zone>/<path> with a zone of "
                          f"{', '.join(ZONES)}")  # fmt: skip
    if not (privilege or "").strip():
        raise AccessError(f"grant to {principal} on {dataset}: no privilege")


def grant(engine: Engine, principal: str, dataset: str, privilege: str, by: str, *,
          at: datetime | None = None) -> int:  # fmt: skip
    """Grant ``privilege`` on a dataset to a named account (again, if it was revoked); a grant
    already live is left as it is. Audited; returns the grant's id."""
    _check_grant(principal, dataset, privilege)
    if not (by or "").strip():
        raise AccessError(f"grant to {principal} on {dataset}: say who grants it")
    at = at or datetime.now(UTC)
    with engine.begin() as conn:
        row = conn.execute(text(
            """INSERT INTO govops.security_access_grant (principal, dataset, privilege, granted_by, granted_at)
               VALUES (:p, :d, :priv, :by, :at)
               ON CONFLICT (principal, dataset, privilege) DO UPDATE SET granted_by = EXCLUDED.granted_by,
                      granted_at = EXCLUDED.granted_at, last_access_at = NULL, revoked_at = NULL, revoked_by = NULL
                WHERE security_access_grant.revoked_at IS NOT NULL
               RETURNING id"""),
            {"p": principal, "d": dataset, "priv": privilege, "by": by, "at": at}).first()  # fmt: skip
        if row is None:  # already live
            return int(conn.execute(text(
                """SELECT id FROM govops.security_access_grant WHERE principal = :p AND dataset = :d
                      AND privilege = :priv"""), {"p": principal, "d": dataset, "priv": privilege}).scalar_one())
        audit.append(conn, actor=by, action="access.grant", dataset=dataset,
                     details={"grant": row.id, "principal": principal, "privilege": privilege})  # fmt: skip
        return int(row.id)


def record_access(engine: Engine, principal: str, dataset: str, at: datetime | None = None) -> int:
    """A principal used its live grants on a dataset at ``at`` (default now); audited.
    Refused without a live grant (that access should not have happened). Returns the grants touched."""
    at = at or datetime.now(UTC)
    with engine.begin() as conn:
        touched = conn.execute(text(
            """UPDATE govops.security_access_grant
                  SET last_access_at = GREATEST(coalesce(last_access_at, CAST(:at AS timestamptz)), :at)
                WHERE principal = :p AND dataset = :d AND revoked_at IS NULL"""),
            {"p": principal, "d": dataset, "at": at}).rowcount  # fmt: skip
        if not touched:
            raise AccessError(f"{principal} has no live grant on {dataset}: access not recorded")
        audit.append(conn, actor=principal, action="access.use", dataset=dataset,
                     details={"principal": principal, "at": at.isoformat()})  # fmt: skip
        return int(touched)


def revoke(engine: Engine, principal: str, dataset: str, privilege: str, by: str) -> None:
    """Revoke a live grant; audited."""
    if not (by or "").strip():
        raise AccessError(f"revoke from {principal} on {dataset}: say who revokes it")
    with engine.begin() as conn:
        row = conn.execute(text(
            """UPDATE govops.security_access_grant SET revoked_at = now(), revoked_by = :by
                WHERE principal = :p AND dataset = :d AND privilege = :priv AND revoked_at IS NULL RETURNING id"""),
            {"p": principal, "d": dataset, "priv": privilege, "by": by}).first()  # fmt: skip
        if row is None:
            raise AccessError(f"{principal} has no live {privilege} grant on {dataset} to revoke")
        audit.append(conn, actor=by, action="access.revoke", dataset=dataset,
                     details={"grant": row.id, "principal": principal, "privilege": privilege})  # fmt: skip


SAMPLE_GRANTS = (  # principal, dataset, privilege, granted (days ago), last access (days ago, None: never)
    ("wang.fang", "raw/frontdb/public_security/persons", "read", 40, 2),
    ("chen.jing", "sharing/public_security/persons", "read", 30, 5),
    ("li.qiang", "raw/frontdb/planning_resources/addresses", "read", 400, 200),  # stale
    ("zhao.min", "sharing/retired/persons_2024", "read", 60, None),  # on a dataset that no longer exists
)  # fmt: skip


def ensure_sample_grants(engine: Engine, *, now: datetime | None = None, by: str = "demo") -> list[int]:
    """The demo's grants to named principals (one stale, one on a missing dataset); a grant
    that exists already is left as it is. Returns their ids."""
    now = now or datetime.now(UTC)
    ids = []
    for principal, dataset, privilege, granted, used in SAMPLE_GRANTS:
        with engine.connect() as conn:
            known = conn.execute(text(
                """SELECT id FROM govops.security_access_grant WHERE principal = :p AND dataset = :d
                      AND privilege = :priv"""), {"p": principal, "d": dataset, "priv": privilege}).scalar()
        if known is not None:
            ids.append(int(known))
            continue
        ids.append(grant(engine, principal, dataset, privilege, by, at=now - timedelta(days=granted)))
        if used is not None:
            record_access(engine, principal, dataset, now - timedelta(days=used))
    return ids
