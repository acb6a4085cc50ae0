"""The application-service spec: one YAML file per deliverable (include/analytics/*.yaml).

A statistical analysis (item 14), a report (15), a fusion or mining model (16, 17) or a
dashboard (18): the lake datasets it reads with the data domain (数据领域) of each, its
logic (Spark SQL per output, or a Python module), its outputs with their Chinese headers,
its work order and how it is refreshed. Validated with pydantic, so an error names the file
and the field, e.g. ``include/analytics/x.yaml: refresh.factor: ...``.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from govops import settings, specs
from govops.specs import SpecError

ANALYTICS_DIR = "include/analytics"
_NAME = re.compile(r"[a-z][a-z0-9_]{2,62}")
_IDENT = re.compile(r"[a-z_][a-z0-9_]*")
Kind = Literal["analysis", "report", "fusion_model", "mining_model", "dashboard"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Input(_Strict):
    dataset: Annotated[str, Field(pattern=r"^[a-z]+/[a-z0-9_]+(/[a-z0-9_]+)*$")]  # <zone>/<path> in the lake
    domain: Annotated[str, Field(min_length=2)]  # 数据领域: difficulty counts the distinct ones
    department: str | None = None  # the providing department (委办局), for the design document


class Chart(_Strict):
    type: Literal["line", "bar"]
    x: str
    y: str
    series: str | None = None  # one line / bar group per value of this column
    title: str | None = None


class Output(_Strict):
    title: str  # the sheet and section title (Chinese)
    sql: str | None = None  # Spark SQL over the inputs' views; parameters as :name
    columns: dict[str, str]  # column -> header (Chinese), in order: the result has exactly these
    chart: Chart | None = None

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("name the output's columns and their headers")
        bad = [c for c in value if not _IDENT.fullmatch(c)]
        if bad:
            raise ValueError(f"column names {bad} must be lower-case identifiers")
        return value

    @model_validator(mode="after")
    def _chart_columns(self) -> Output:
        if self.chart:
            used = [c for c in (self.chart.x, self.chart.y, self.chart.series) if c]
            unknown = [c for c in used if c not in self.columns]
            if unknown:
                raise ValueError(f"chart uses columns {unknown} the output does not have")
        return self


class Refresh(_Strict):
    """Automatic (a schedule or an update of an input Asset: not billed) or manual (a
    report's manual refresh, billed at ``factor`` against ``work_order``)."""

    mode: Literal["automatic", "manual"]
    schedule: str | None = None  # automatic: a cron expression or preset
    on_inputs: bool = False  # automatic: run when any input dataset's Asset is updated
    factor: Annotated[Decimal, Field(ge=Decimal("0.1"), le=Decimal("0.3"))] | None = None  # manual
    work_order: str | None = None  # manual: the refresh work order (its difficulty = difficulty x factor)

    @model_validator(mode="after")
    def _mode_fields(self) -> Refresh:
        if self.mode == "automatic":
            if (self.schedule is None) == (not self.on_inputs):
                raise ValueError("automatic refresh needs exactly one of schedule or on_inputs: true")
            if self.factor is not None or self.work_order is not None:
                raise ValueError("factor and work_order are only used with mode manual")
        else:
            if self.factor is None or not self.work_order:
                raise ValueError("manual refresh needs factor (0.1 to 0.3) and work_order")
            if self.schedule is not None or self.on_inputs:
                raise ValueError("a manual refresh has no schedule and no on_inputs")
        return self


class Screen(_Strict):
    """A dashboard screen: a big screen shows theme domains (主题域), each its outputs' charts
    on a page of its own; a medium or small screen shows modules, one output each."""

    name: str
    size: Literal["big", "medium", "small"]
    theme_domains: dict[str, list[str]] = {}  # big: theme domain -> the outputs it shows (1 each)
    modules: dict[str, str] = {}  # medium / small: module -> the output it shows (a fraction each)

    @model_validator(mode="after")
    def _size_fields(self) -> Screen:
        if self.size == "big" and (not self.theme_domains or self.modules):
            raise ValueError("a big screen lists theme_domains (and no modules)")
        if self.size != "big" and (not self.modules or self.theme_domains):
            raise ValueError("a medium or small screen lists modules (and no theme_domains)")
        if any(not shown for shown in self.theme_domains.values()):
            raise ValueError("each theme domain lists the outputs it shows")
        return self

    @property
    def shown(self) -> list[str]:
        return [o for outs in self.theme_domains.values() for o in outs] + list(self.modules.values())


class Indicator(_Strict):
    """A fusion model's indicator: a column of the model's table, scored
    weight x min(value / threshold, 1) (negative values score 0)."""

    title: str  # 指标名称
    definition: str  # 指标口径, in words, for the design document
    department: str  # whose records it comes from
    weight: Annotated[Decimal, Field(gt=0, le=1)]
    threshold: Annotated[Decimal, Field(gt=0)]  # the value that scores the full weight
    unit: str = ""


class Feature(_Strict):
    """A mining model's feature: a numeric column of the model's table."""

    title: str
    definition: str
    department: str


class Rule(_Strict):
    """A fusion rule: rows for which ``when`` (Spark SQL over the table's columns) holds get
    ``level`` whatever their score."""

    title: str
    when: str
    level: str


class Scenario(_Strict):
    """A test scenario of the model test report: every result row for which ``where`` holds
    must satisfy ``expect`` (both Spark SQL over the table's and the result's columns)."""

    title: str
    where: str
    expect: str


METRICS = ("auc", "precision", "recall", "f1", "accuracy")
RESULT_COLUMNS = {"fusion_model": ("score", "level", "reasons", "alert", "split"),
                  "mining_model": ("score", "alert", "split")}  # fmt: skip
EVALUATION_COLUMNS = ("section", "item", "value", "text", "floor", "passed")


class Model(_Strict):
    """A fusion (item 16) or mining (17) model over one output of the spec, ``table``: one row
    per ``key`` with its indicators or features and the observed outcome ``label`` (0/1)
    the model is tested against on the held-out rows (``split`` = test: a hash of the key
    and ``seed`` below ``test_fraction``). It writes ``result`` (the key, score, alert and
    split per row) and ``evaluation`` (environment, method, metrics, scenarios)."""

    table: str
    key: str
    label: str
    result: str = "result"
    evaluation: str = "evaluation"
    test_fraction: Annotated[Decimal, Field(ge=Decimal("0.1"), le=Decimal("0.5"))] = Decimal("0.3")
    seed: int = 42
    floors: dict[Literal["auc", "precision", "recall", "f1", "accuracy"], Annotated[Decimal, Field(ge=0, le=1)]] = {}
    scenarios: list[Scenario] = []
    # fusion
    indicators: dict[str, Indicator] = {}
    levels: dict[str, Annotated[Decimal, Field(ge=0, le=100)]] = {}  # level -> lowest score (0-100), highest first
    alert_levels: list[str] = []  # the levels that raise a warning (predicted positive)
    rules: list[Rule] = []
    # mining
    features: dict[str, Feature] = {}
    algorithm: Literal["logistic_regression", "random_forest"] | None = None
    hyperparameters: dict[str, int | float] = {}
    alert_threshold: Annotated[Decimal, Field(gt=0, lt=1)] = Decimal("0.5")  # probability that raises a warning

    @model_validator(mode="after")
    def _levels(self) -> Model:
        bounds = list(self.levels.values())
        if bounds != sorted(bounds, reverse=True) or (bounds and bounds[-1] != 0):
            raise ValueError("levels: list the levels from the highest score down, the last from 0")
        unknown = [lv for lv in self.alert_levels + [r.level for r in self.rules] if lv not in self.levels]
        if unknown:
            raise ValueError(f"levels {unknown} are not declared in levels")
        return self


class AnalyticsSpec(_Strict):
    name: str
    kind: Kind
    title: str  # the deliverable's title (Chinese), shown in reports
    description: str = ""
    department: str  # the requesting department (需求方)
    work_order: str  # default of the DAG's work_order_id param
    inputs: dict[str, Input]  # view name -> dataset
    parameters: dict[str, str | int | float | bool] = {}  # defaults of the SQL's :name parameters
    module: str | None = None  # instead of sql: a module whose run(spark, views, parameters) returns the outputs
    outputs: dict[str, Output]
    refresh: Refresh | None = None  # none: runs only when triggered (delivery and corrections)
    model: Model | None = None  # fusion and mining models
    screens: list[Screen] = []  # dashboards
    module_factor: Annotated[Decimal, Field(ge=Decimal("0.1"), le=Decimal("0.2"))] | None = None
    module_work_order: str | None = None  # dashboards with medium / small screens
    library: str | None = None  # analyses: the 库 whose programs count towards the cap of 20 (default: first domain)
    owner: str = "govops"

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError("lower-case letters, digits and _; 3-63 characters, starting with a letter")
        return value

    @field_validator("inputs", "outputs", "parameters")
    @classmethod
    def _identifiers(cls, value: dict[str, Any]) -> dict[str, Any]:
        bad = [k for k in value if not _IDENT.fullmatch(k)]
        if bad:
            raise ValueError(f"names {bad} must be lower-case identifiers")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> AnalyticsSpec:
        if not self.inputs:
            raise ValueError("inputs: read at least one lake dataset")
        if not self.outputs:
            raise ValueError("outputs: declare at least one output")
        with_sql = [n for n, o in self.outputs.items() if o.sql]
        produced = self._check_model()
        if self.module is None and len(with_sql) + len(produced) != len(self.outputs):
            missing = sorted(set(self.outputs) - set(with_sql) - set(produced))
            raise ValueError(f"outputs {missing} have no sql: give each output sql, or give module")
        if self.module is not None:
            if with_sql:
                raise ValueError(f"give module or sql, not both (outputs with sql: {with_sql})")
            if not re.fullmatch(r"[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*)+", self.module):
                raise ValueError(f"module {self.module!r} is not a dotted module path")
        if self.refresh and self.refresh.mode == "manual" and self.kind != "report":
            raise ValueError("refresh.mode manual is billed only for reports (item 15): use kind report")
        if self.kind == "dashboard":
            if not self.screens:
                raise ValueError("screens: a dashboard lists its screens")
            small = any(s.size != "big" for s in self.screens)
            if small != (self.module_factor is not None and bool(self.module_work_order)):
                raise ValueError("medium / small screens go with module_factor (0.1 to 0.2) and module_work_order")
            unknown = sorted({o for s in self.screens for o in s.shown} - set(self.outputs))
            if unknown:
                raise ValueError(f"screens show outputs {unknown} the spec does not declare")
        elif self.screens or self.module_factor is not None or self.module_work_order:
            raise ValueError("screens, module_factor and module_work_order are only used by kind dashboard")
        if self.library is not None and self.kind != "analysis":
            raise ValueError("library is only used by kind analysis (the cap of 20 programs per library, item 14)")
        return self

    def _check_model(self) -> list[str]:
        """The outputs the model writes (no sql); a model's fields checked against its kind."""
        model = self.model
        if self.kind not in ("fusion_model", "mining_model"):
            if model is not None:
                raise ValueError("model is only used by kinds fusion_model and mining_model")
            return []
        if model is None:
            raise ValueError(f"a {self.kind} declares its model")
        if self.module is not None:
            raise ValueError("a model's table comes from sql, not module")
        table = self.outputs.get(model.table)
        if table is None or not table.sql:
            raise ValueError(f"model.table: {model.table!r} is not an output with sql")
        used = [model.key, model.label, *model.indicators, *model.features]
        missing = [c for c in used if c not in table.columns]
        if missing:
            raise ValueError(f"model: columns {missing} are not columns of output {model.table}")
        if self.kind == "fusion_model":
            if not model.indicators or not model.levels or not model.alert_levels:
                raise ValueError("a fusion model declares indicators, levels and alert_levels")
            if sum(i.weight for i in model.indicators.values()) != 1:
                raise ValueError("model.indicators: the weights add up to 1")
            if model.features or model.algorithm:
                raise ValueError("features and algorithm are for mining models")
        else:
            if not model.features or model.algorithm is None:
                raise ValueError("a mining model declares features and algorithm")
            if model.indicators or model.levels or model.rules:
                raise ValueError("indicators, levels and rules are for fusion models")
        expected = {model.result: (model.key, *RESULT_COLUMNS[self.kind]), model.evaluation: EVALUATION_COLUMNS}
        for name, columns in expected.items():
            out = self.outputs.get(name)
            if out is None or out.sql or tuple(out.columns) != columns:
                raise ValueError(f"outputs.{name}: the model writes it (no sql) with the columns {list(columns)}")
        return list(expected)

    @property
    def domains(self) -> list[str]:
        """The distinct data domains (数据领域) of the inputs, in order of first use."""
        return list(dict.fromkeys(i.domain for i in self.inputs.values()))

    @property
    def library_name(self) -> str:
        """The library (库) of an analysis: ``library``, else the data domain of its first input."""
        return self.library or self.domains[0]

    @property
    def dag_id(self) -> str:
        return f"analytics_{self.name}"


def parse_spec(spec_json: str) -> AnalyticsSpec:
    """A spec handed over as JSON (the Spark job's --spec); a SpecError names the field."""
    try:
        return AnalyticsSpec.model_validate_json(spec_json)
    except ValidationError as exc:
        raise SpecError(f"--spec: {specs.describe(exc)}") from None


def load_spec(path: Path) -> AnalyticsSpec:
    return specs.load(path, AnalyticsSpec, "name")


def spec_files(folder: Path | None = None) -> list[Path]:
    """The spec files: GOVOPS_ANALYTICS_DIR (tests, deployments), else include/analytics."""
    import os

    folder = folder or Path(os.environ.get("GOVOPS_ANALYTICS_DIR") or settings.repo_root() / ANALYTICS_DIR)
    return sorted(folder.glob("*.yaml"))


def load_specs(folder: Path | None = None) -> tuple[list[AnalyticsSpec], list[SpecError]]:
    """Every valid spec, and the errors of the others (a bad spec never hides the rest)."""
    specs, errors = [], []
    for path in spec_files(folder):
        try:
            specs.append(load_spec(path))
        except SpecError as exc:
            errors.append(exc)
    return specs, errors
