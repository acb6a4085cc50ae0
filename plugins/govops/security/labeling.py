"""Column labels (数据标注, item 06) as versioned metadata, the labeling log, human review, and
the labeling report.

**Versions.** ``govops.security_label`` keeps every label a column of a dataset ever had,
numbered 1, 2, ... per (dataset, column). A label is the business category, the data type,
the GB/T 43697-2024 grade and the level of ``include/security/grading.yaml``; ``source``
says where it came from: ``detected`` (a labeling run), ``confirmed`` or ``override`` (a
person, with ``decided_by`` and ``reason``). Evidence (match ratios and counts, never a
value) goes with each version.

**The current label** of a column is its latest human decision (confirmed or override) if
it has one, else its latest version. A labeling run writes a new ``detected`` version only
when its result differs from the current label and from the latest version: re-running the
same detection on the same data adds nothing. After a person decided, a later detection
that disagrees is still recorded (once) as a ``detected`` version, for the record and for
review (``Label.pending_detection`` names it), but it does not become current: a person's
decision is replaced only by another person's (``confirm`` of that detection, or a new
``override``).

**The labeling log** (``govops.security_labeling_run``): one row per (dag_id, run_id,
dataset) with the rows labeled, the columns labeled, the sensitive columns (whose current
level is marked sensitive in the grading table) and each column's current label. Recording
a run twice (a re-run, a retry) returns the first record and changes nothing. Runs,
confirmations and overrides are appended to the audit log (``govops.security.audit``).
"""

from __future__ import annotations

import html
import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, text

from govops.errors import CodedError
from govops.security import audit
from govops.security.detectors import DATA_TYPES, ColumnDetection
from govops.security.grading import GRADES_ZH, Grading
from govops.security.grading import load as load_grading

HUMAN = ("confirmed", "override")
KEEP = object()  # override(): keep the column's current data type
LABEL_FIELDS = ("category", "data_type", "grade", "level")


class LabelingError(CodedError, ValueError):
    code = "LABELING_REFUSED"


@dataclass(frozen=True)
class Label:
    column: str
    category: str
    data_type: str | None
    grade: str
    level: str
    version: int
    source: str  # detected | confirmed | override
    decided_by: str | None = None
    reason: str | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    pending_detection: int | None = None  # a later detected version that differs from this human decision

    def content(self) -> tuple[Any, ...]:
        return (self.category, self.data_type, self.grade, self.level)


def _label(row: Any) -> Label:
    return Label(column=row.column_name, category=row.category, data_type=row.data_type, grade=row.grade,
                 level=row.level, version=row.version, source=row.source, decided_by=row.decided_by,
                 reason=row.reason, evidence=row.evidence or {}, created_at=row.created_at)  # fmt: skip


def label_history(conn: Connection, dataset: str, column: str | None = None) -> list[Label]:
    """Every version, oldest first (of one column, or of all)."""
    rows = conn.execute(
        text("""SELECT column_name, category, data_type, grade, level, version, source, decided_by, reason, evidence,
                       created_at FROM govops.security_label
                WHERE dataset = :d AND (CAST(:c AS text) IS NULL OR column_name = :c)
                ORDER BY column_name, version"""),
        {"d": dataset, "c": column},
    )  # fmt: skip
    return [_label(r) for r in rows]


def _current(history: list[Label]) -> Label:
    latest = history[-1]
    human = next((h for h in reversed(history) if h.source in HUMAN), None)
    if human is None:
        return latest
    pending = next((h.version for h in reversed(history) if h.version > human.version and h.source == "detected"
                    and h.content() != human.content()), None)  # fmt: skip
    return Label(**{**human.__dict__, "pending_detection": pending})


def _by_column(conn: Connection, dataset: str) -> dict[str, list[Label]]:
    by_column: dict[str, list[Label]] = {}
    for label in label_history(conn, dataset):
        by_column.setdefault(label.column, []).append(label)
    return by_column


def current_labels(conn: Connection, dataset: str) -> dict[str, Label]:
    """Column -> its current label (the latest human decision, else the latest version)."""
    return {column: _current(history) for column, history in _by_column(conn, dataset).items()}


def _lock(conn: Connection, dataset: str) -> None:
    # Labelers of one dataset (a run, a person's override) take turns: versions stay dense.
    conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"govops.security_label:{dataset}"})


def _insert(conn: Connection, dataset: str, column: str, content: Mapping[str, Any], *, source: str,
            evidence: Mapping[str, Any], decided_by: str | None = None, reason: str | None = None,
            dag_id: str | None = None, run_id: str | None = None) -> int:  # fmt: skip
    version = conn.execute(
        text("SELECT coalesce(max(version), 0) + 1 FROM govops.security_label WHERE dataset = :d AND column_name = :c"),
        {"d": dataset, "c": column},
    ).scalar_one()
    conn.execute(
        text("""INSERT INTO govops.security_label (dataset, column_name, version, category, data_type, grade, level,
                    source, evidence, decided_by, reason, dag_id, run_id)
                VALUES (:d, :c, :v, :category, :data_type, :grade, :level, :source, CAST(:evidence AS jsonb), :by,
                        :reason, :dag_id, :run_id)"""),
        {"d": dataset, "c": column, "v": version, **{k: content[k] for k in LABEL_FIELDS}, "source": source,
         "evidence": json.dumps(evidence, ensure_ascii=False, default=str), "by": decided_by, "reason": reason,
         "dag_id": dag_id, "run_id": run_id},
    )  # fmt: skip
    return int(version)


def proposed_label(detection: ColumnDetection, grading: Grading) -> dict[str, Any]:
    """What the grading table makes of a detection: category, data_type, grade, level."""
    category, grade, level = grading.label_for(detection.data_type)
    return {"category": category, "data_type": detection.data_type, "grade": grade, "level": level}


def _detections(raw: Mapping[str, Any]) -> dict[str, ColumnDetection]:
    return {c: d if isinstance(d, ColumnDetection) else ColumnDetection.from_dict(d) for c, d in raw.items()}


def record_run(
    engine: Engine, *, dag_id: str, run_id: str, dataset: str, detections: Mapping[str, Any], rows: int,
    grading: Grading | None = None, work_order_id: str | None = None, settings: Mapping[str, Any] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Label every detected column (a new version where the result changed), write the
    labeling log row and its audit entry, in one transaction; idempotent per (dag_id,
    run_id, dataset): a second call returns the first record (``recorded`` False)."""
    grading = grading or load_grading()
    found = _detections(detections)
    with engine.begin() as conn:
        _lock(conn, dataset)
        existing = conn.execute(
            text("""SELECT id, rows_labeled, columns_labeled, sensitive_columns, labels
                    FROM govops.security_labeling_run WHERE dag_id = :g AND run_id = :r AND dataset = :d"""),
            {"g": dag_id, "r": run_id, "d": dataset},
        ).first()  # fmt: skip
        if existing is not None:
            return {"labeling_run_id": existing.id, "dataset": dataset, "rows_labeled": existing.rows_labeled,
                    "columns_labeled": existing.columns_labeled, "sensitive_columns": existing.sensitive_columns,
                    "labels": existing.labels["columns"], "new_versions": existing.labels["new_versions"],
                    "recorded": False}  # fmt: skip
        histories = _by_column(conn, dataset)
        current = {c: _current(h) for c, h in histories.items()}
        labels, new_versions = {}, []
        for column, detection in found.items():
            proposal = proposed_label(detection, grading)
            evidence = {**detection.evidence(), "grading_sha256": grading.sha256, **(settings or {})}
            now = current.get(column)
            content = tuple(proposal[k] for k in LABEL_FIELDS)
            if now is None or (content != now.content() and content != histories[column][-1].content()):
                version = _insert(conn, dataset, column, proposal, source="detected", evidence=evidence,
                                  dag_id=dag_id, run_id=run_id)  # fmt: skip
                new_versions.append(column)
                if now is None or now.source not in HUMAN:
                    now = Label(column=column, **proposal, version=version, source="detected", evidence=evidence)
                else:
                    now = Label(**{**now.__dict__, "pending_detection": version})
            labels[column] = {
                "category": now.category, "data_type": now.data_type, "grade": now.grade, "level": now.level,
                "version": now.version, "source": now.source, "pending_detection": now.pending_detection,
                "detected": proposal, "match_ratio": round(detection.match_ratio, 6), "matches": detection.matches,
                "non_null": detection.non_null, "name_hint": detection.name_hint, "rule": detection.rule,
                "sensitive": grading.is_sensitive(now.level),
            }  # fmt: skip
        sensitive = sorted(c for c, lab in labels.items() if lab["sensitive"])
        run_pk = conn.execute(
            text("""INSERT INTO govops.security_labeling_run (dag_id, run_id, dataset, rows_labeled, columns_labeled,
                        sensitive_columns, labels, work_order_id)
                    VALUES (:g, :r, :d, :rows, :cols, :sens, CAST(:labels AS jsonb), :wo) RETURNING id"""),
            {"g": dag_id, "r": run_id, "d": dataset, "rows": rows, "cols": len(labels), "sens": len(sensitive),
             "labels": json.dumps({"columns": labels, "new_versions": new_versions,
                                   "grading_sha256": grading.sha256, **(settings or {})}, ensure_ascii=False),
             "wo": work_order_id},
        ).scalar_one()  # fmt: skip
        audit.append(conn, actor=f"dag:{dag_id}", action="label.run", dataset=dataset, details={
            "run_id": run_id, "labeling_run_id": run_pk, "rows_labeled": rows, "columns": len(labels),
            "sensitive_columns": sensitive, "new_versions": new_versions, "grading_sha256": grading.sha256,
        })  # fmt: skip
    return {"labeling_run_id": run_pk, "dataset": dataset, "rows_labeled": rows, "columns_labeled": len(labels),
            "sensitive_columns": len(sensitive), "labels": labels, "new_versions": new_versions,
            "recorded": True}  # fmt: skip


def record_from_manifest(engine: Engine, manifest: Mapping[str, Any], grading: Grading | None = None) -> dict[str, Any]:
    """:func:`record_run` from the ``label_dataset`` job's manifest."""
    found = next((o for o in manifest["outputs"] if o.get("kind") == "labeling"), None)
    if found is None:
        raise LabelingError(f"{manifest.get('manifest_uri', 'the manifest')}: no labeling output")
    run = manifest["run"]
    grading = grading or load_grading()
    settings = {"threshold": found["threshold"], "hint_threshold": found["hint_threshold"],
                "sample_rows": found["sample_rows"]}  # fmt: skip
    return record_run(engine, dag_id=run["dag_id"], run_id=run["run_id"], dataset=found["dataset"],
                      detections=found["columns"], rows=found["rows"], grading=grading,
                      work_order_id=run.get("work_order_id"), settings=settings)  # fmt: skip


def _who(by: str, reason: str | None, *, need_reason: bool) -> None:
    if not by or not by.strip():
        raise LabelingError("say who decides (by): labels are reviewed by named people, not shared accounts")
    if need_reason and (not reason or not reason.strip()):
        raise LabelingError("an override needs a reason")


def override(
    engine: Engine, dataset: str, column: str, *, category: str, level: str, by: str, reason: str,
    grade: str | None = None, data_type: Any = KEEP, grading: Grading | None = None,
) -> Label:  # fmt: skip
    """A person sets a column's label; it stays current until a person changes it. ``grade``
    defaults to the level's grade (a grade that contradicts the level is refused);
    ``data_type`` defaults to the column's current one."""
    _who(by, reason, need_reason=True)
    grading = grading or load_grading()
    if category not in grading.categories:
        raise LabelingError(f"{dataset}.{column}: unknown category {category!r} (categories: "
                            f"{', '.join(grading.categories)})")  # fmt: skip
    if level not in grading.levels:
        raise LabelingError(f"{dataset}.{column}: unknown level {level!r} (levels: {', '.join(grading.levels)})")
    if grade is not None and grade != grading.grade_of(level):
        raise LabelingError(f"{dataset}.{column}: level {level} is {grading.grade_of(level)}, not {grade} "
                            f"({grading.path})")  # fmt: skip
    if data_type is not KEEP and data_type is not None and data_type not in DATA_TYPES:
        raise LabelingError(f"{dataset}.{column}: unknown data type {data_type!r} (known: {', '.join(DATA_TYPES)})")
    with engine.begin() as conn:
        _lock(conn, dataset)
        before = current_labels(conn, dataset).get(column)
        kept_type = (before.data_type if before else None) if data_type is KEEP else data_type
        content = {"category": category, "data_type": kept_type, "grade": grading.grade_of(level), "level": level}
        previous = None if before is None else {"version": before.version, "source": before.source,
                                                **{k: getattr(before, k) for k in LABEL_FIELDS}}  # fmt: skip
        evidence = {"previous": previous}
        version = _insert(conn, dataset, column, content, source="override", evidence=evidence, decided_by=by,
                          reason=reason)  # fmt: skip
        audit.append(conn, actor=by, action="label.override", dataset=dataset, details={
            "column": column, "version": version, **content, "previous_version": before.version if before else None,
            "reason": reason,
        })  # fmt: skip
        return current_labels(conn, dataset)[column]


def confirm(engine: Engine, dataset: str, column: str, *, by: str, reason: str | None = None,
            version: int | None = None) -> Label:  # fmt: skip
    """A person confirms a label version (default: the column's latest, e.g. a detection
    pending after an override): it becomes a ``confirmed`` version and current. Confirming
    what is already the latest confirmed label adds nothing."""
    _who(by, reason, need_reason=False)
    with engine.begin() as conn:
        _lock(conn, dataset)
        history = label_history(conn, dataset, column)
        if not history:
            raise LabelingError(f"{dataset}.{column}: no label to confirm (run the labeling first, or override)")
        chosen = history[-1] if version is None else next((h for h in history if h.version == version), None)
        if chosen is None:
            raise LabelingError(f"{dataset}.{column}: no version {version} (versions 1..{history[-1].version})")
        if chosen is history[-1] and chosen.source == "confirmed":
            return current_labels(conn, dataset)[column]
        content = {k: getattr(chosen, k) for k in LABEL_FIELDS}
        new = _insert(conn, dataset, column, content, source="confirmed", decided_by=by, reason=reason,
                      evidence={"confirms_version": chosen.version, "confirms_source": chosen.source,
                                **{k: v for k, v in chosen.evidence.items() if k != "confirms_version"}})  # fmt: skip
        audit.append(conn, actor=by, action="label.confirm", dataset=dataset, details={
            "column": column, "version": new, "confirms_version": chosen.version, **content, "reason": reason,
        })  # fmt: skip
        return current_labels(conn, dataset)[column]


# --- the labeling report ---


def _chart(labels: Mapping[str, Mapping[str, Any]], grading: Grading) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from govops.charts import png_data_uri

    levels = list(grading.levels)
    counts = [sum(1 for lab in labels.values() if lab["level"] == lv) for lv in levels]
    colours = {"general": "#2a9d8f", "important": "#e9c46a", "core": "#e76f51"}
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.bar([f"{lv} {grading.levels[lv].grade}" for lv in levels], counts,
           color=[colours[grading.levels[lv].grade] for lv in levels])  # fmt: skip
    for x, n in enumerate(counts):
        ax.text(x, n, str(n), ha="center", va="bottom")
    ax.set_ylabel("columns")
    ax.set_title("columns per level and grade")
    return png_data_uri(fig)


def _rows_for_export(summary: Mapping[str, Any], grading: Grading) -> list[dict[str, Any]]:
    out = []
    for column, lab in summary["labels"].items():
        out.append({
            "column": column, "data_type": lab["data_type"] or "", "category": lab["category"],
            "category_zh": grading.categories.get(lab["category"], ""), "grade": lab["grade"],
            "grade_zh": GRADES_ZH[lab["grade"]], "level": lab["level"],
            "level_zh": grading.levels[lab["level"]].name_zh if lab["level"] in grading.levels else "",
            "match_ratio": lab["match_ratio"], "matches": lab["matches"], "non_null": lab["non_null"],
            "name_hint": lab["name_hint"] or "", "source": lab["source"], "version": lab["version"],
            "sensitive": lab["sensitive"], "pending_detection": lab["pending_detection"] or "",
        })  # fmt: skip
    return out


def _pending(row: Mapping[str, Any]) -> str:
    return f" (detection v{row['pending_detection']} pending review)" if row["pending_detection"] else ""


def write_report(lake_root: str, summary: Mapping[str, Any], *, run_id: str, grading: Grading | None = None,
                 csv: bool = True) -> dict[str, str]:  # fmt: skip
    """The run's labeling report ``<lake>/reports/security/labeling/<dataset>/<run>/report.html``
    (and ``labels.csv``): per column its data type, category, grade, level, match ratio and
    where the label came from, and a chart of columns per grade. Counts only, no values."""
    import csv as csvlib

    from pyarrow import fs as pafs

    from govops.spark.manifest import _safe

    grading = grading or load_grading()
    e = html.escape
    rows = _rows_for_export(summary, grading)
    body = "".join(
        f"<tr class='{e(r['grade'])}{' sensitive' if r['sensitive'] else ''}'><td>{e(r['column'])}</td>"
        f"<td>{e(r['data_type'] or '—')}</td><td>{e(r['category_zh'])} {e(r['category'])}</td>"
        f"<td>{e(r['grade_zh'])} {e(r['grade'])}</td><td>{e(r['level'])} {e(r['level_zh'])}</td>"
        f"<td class=n>{100 * r['match_ratio']:.1f}%</td><td class=n>{r['matches']:,} / {r['non_null']:,}</td>"
        f"<td>{e(r['name_hint'] or '')}</td><td>{e(r['source'])} v{r['version']}{_pending(r)}</td></tr>"
        for r in rows
    )  # fmt: skip
    dataset = str(summary["dataset"])
    page = f"""<!doctype html><html lang=zh><head><meta charset=utf-8>
<title>数据标注报告 {e(dataset)}</title><style>
body{{font-family:sans-serif;margin:2em;max-width:1150px}} td,th{{padding:3px 8px;border-bottom:1px solid #ddd}}
.n{{text-align:right}} table{{border-collapse:collapse}} tr.important td{{background:#fff3cd}}
tr.core td{{background:#fde2e1}} tr.sensitive td:first-child{{font-weight:bold}}</style></head><body>
<h1>数据标注报告 · Labeling report</h1>
<p>dataset <code id=dataset>{e(dataset)}</code> · run <code>{e(run_id)}</code></p>
<p>rows labeled <b id=rows>{summary['rows_labeled']:,}</b> · columns <b id=columns>{summary['columns_labeled']}</b>
· sensitive columns <b id=sensitive>{summary['sensitive_columns']}</b>
· new label versions <b id=new-versions>{len(summary['new_versions'])}</b></p>
<p>grading table <code>{e(str(grading.path.name))}</code> ({e(grading.sha256[:12])}), GB/T 43697-2024 grades</p>
<h2>Columns per grade</h2><img alt="columns per grade" src="{_chart(summary['labels'], grading)}">
<h2>Labels</h2><table><tr><th>column</th><th>data type</th><th>category</th><th>grade</th><th>level</th>
<th>match ratio</th><th>matches / non-null</th><th>name hint</th><th>label</th></tr>{body}</table>
</body></html>"""
    root = lake_root.rstrip("/")
    folder = f"{root}/reports/security/labeling/{dataset}/{_safe(run_id)}"
    out = {"report": f"{folder}/report.html"}
    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp)
        (local / "report.html").write_text(page, encoding="utf-8")
        if csv:
            with (local / "labels.csv").open("w", encoding="utf-8-sig", newline="") as f:
                writer = csvlib.DictWriter(f, fieldnames=list(rows[0]) if rows else ["column"])
                writer.writeheader()
                writer.writerows(rows)
            out["csv"] = f"{folder}/labels.csv"
        filesystem, base = pafs.FileSystem.from_uri(folder)
        filesystem.create_dir(base, recursive=True)
        pafs.copy_files(str(local), base, destination_filesystem=filesystem)
    return out
