"""Difficulty (难度系数) and billed quantity of an application deliverable, from its spec
(seed 000, 数据统计加工服务 / 应用建模服务 / 可视化展现服务), never typed by hand.

- Analyses (14), fusion and mining models (16, 17): 1 for one data domain, +1 for each
  further domain, at most 3. Reports (15): the same, at most 5.
- A report's automatic refresh (schedule, input Asset) is not billed; a manual refresh is
  billed once per refresh at difficulty x the spec's factor (0.1 to 0.3).
- Dashboards (18), in theme domains (主题域): each distinct theme domain on a big screen
  counts 1 (a theme domain shown on two big screens counts once); each module of a medium
  or small screen counts the spec's module_factor (0.1 to 0.2).

- Analyses (14) are capped per work order and library: 在单个专项任务中…每个库中的数据融合加工程序
  个数最多记录20个（包括20）；低于20个…按实结算. A special task (专项任务) is read as one work order
  (工单: one requirement, priced at one difficulty) and a library (库) as the database whose
  data the analysis processes: the spec's ``library``, else the data domain (数据领域) of its
  first input (e.g. 人口). The first ``PROGRAM_CAP`` analyses delivered against a work order
  in one library are billed; later ones are recorded as ``over_cap`` and billed nothing
  (govops.analytics.runs), so settlement bills min(n, 20) per library.

Settlement prices a work order at tiered(quantity) x the work order's difficulty, so each
line below goes to a work order whose difficulty must equal the line's (checked before a
run, ``DIFFICULTY_MISMATCH``).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from govops.analytics.spec import AnalyticsSpec

ITEMS = {"analysis": "14", "report": "15", "fusion_model": "16", "mining_model": "17", "dashboard": "18"}
UNITS = {"analysis": "analysis", "report": "report", "fusion_model": "model", "mining_model": "model",
         "dashboard": "theme_domain"}  # fmt: skip
MAX_DIFFICULTY = {"analysis": 3, "report": 5, "fusion_model": 3, "mining_model": 3}
PROGRAM_CAP = 20  # analyses billed per work order and library (item 14)


@dataclass(frozen=True)
class MeterLine:
    """What a delivery bills: ``quantity`` (in ``unit``) against ``work_order`` at ``difficulty``."""

    work_order: str
    service_item: str
    unit: str
    quantity: int
    difficulty: Decimal
    basis: str  # why, in words, for the ledger row and the design document


def domain_difficulty(kind: str, domains: int) -> Decimal:
    """1 for one domain, +1 per further domain, capped per kind (3, reports 5)."""
    if domains < 1:
        raise ValueError("a deliverable reads at least one data domain")
    return Decimal(min(domains, MAX_DIFFICULTY[kind]))


def difficulty(spec: AnalyticsSpec) -> Decimal:
    """The deliverable's difficulty; dashboards are billed by theme domain at 1 (see lines)."""
    if spec.kind == "dashboard":
        return Decimal(1)
    return domain_difficulty(spec.kind, len(spec.domains))


def refresh_difficulty(spec: AnalyticsSpec) -> Decimal:
    """A report's manual refresh: difficulty x factor; refused for anything else."""
    if spec.refresh is None or spec.refresh.mode != "manual" or spec.refresh.factor is None:
        raise ValueError(f"{spec.name}: only a report with refresh.mode manual has a billed refresh")
    return difficulty(spec) * spec.refresh.factor


def theme_domains(spec: AnalyticsSpec) -> list[str]:
    """The distinct theme domains of the big screens."""
    return list(dict.fromkeys(d for s in spec.screens if s.size == "big" for d in s.theme_domains))


def modules(spec: AnalyticsSpec) -> int:
    return sum(len(s.modules) for s in spec.screens if s.size != "big")


def delivery_lines(spec: AnalyticsSpec) -> list[MeterLine]:
    """What the first delivery of the spec against its work order bills."""
    item, unit = ITEMS[spec.kind], UNITS[spec.kind]
    if spec.kind != "dashboard":
        d = difficulty(spec)
        domains = "、".join(spec.domains)
        return [MeterLine(spec.work_order, item, unit, 1, d,
                          f"{len(spec.domains)} data domain(s) ({domains}) -> difficulty {d}")]  # fmt: skip
    lines = []
    themes = theme_domains(spec)
    if themes:
        lines.append(MeterLine(spec.work_order, item, unit, len(themes), Decimal(1),
                               f"big screen theme domains: {'、'.join(themes)}"))  # fmt: skip
    count = modules(spec)
    if count:
        assert spec.module_work_order and spec.module_factor is not None  # the spec requires them
        lines.append(MeterLine(spec.module_work_order, item, unit, count, spec.module_factor,
                               f"{count} medium / small screen module(s) x {spec.module_factor}"))  # fmt: skip
    return lines


def refresh_line(spec: AnalyticsSpec, work_order: str | None = None) -> MeterLine:
    """What one manual refresh of a report bills."""
    d = refresh_difficulty(spec)
    assert spec.refresh is not None and spec.refresh.work_order
    return MeterLine(work_order or spec.refresh.work_order, ITEMS[spec.kind], UNITS[spec.kind], 1, d,
                     f"manual refresh: difficulty {difficulty(spec)} x factor {spec.refresh.factor}")  # fmt: skip


def billed_equivalent(lines: list[MeterLine]) -> Decimal:
    """quantity x difficulty summed: the catalog units the lines are worth before pricing."""
    return sum((Decimal(line.quantity) * line.difficulty for line in lines), Decimal(0))


def demo_work_orders(specs: list[AnalyticsSpec]) -> list[tuple[str, str, Decimal, str]]:
    """(work order, item, difficulty, unit) the specs' default orders need, for the dev
    fixtures: each at the difficulty its spec gives (a manual refresh's at difficulty x factor)."""
    orders: dict[str, tuple[str, str, Decimal, str]] = {}
    for spec in specs:
        lines = delivery_lines(spec)
        if spec.refresh is not None and spec.refresh.mode == "manual":
            lines.append(refresh_line(spec))
        for line in lines:
            orders.setdefault(line.work_order, (line.work_order, line.service_item, line.difficulty, line.unit))
    return list(orders.values())
