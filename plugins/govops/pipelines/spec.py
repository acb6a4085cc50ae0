"""The pipeline spec: what a data engineer writes to add a source (include/pipelines/*.yaml).

Validated with pydantic, so an error names the file and the field path at fault, e.g.
``include/pipelines/persons.yaml: source.table: Field required``.
"""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from govops import settings, specs
from govops.service_items import SERVICE_ITEMS
from govops.specs import SpecError

PIPELINES_DIR = "include/pipelines"
_NAME = re.compile(r"[a-z][a-z0-9_]{2,62}")
# The extraction items and the unit each is metered in (the catalog's metered quantity).
EXTRACTION_ITEMS = {"01": "record", "02": "record", "03": "coordinate_point", "04": "table"}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")


def _charset(encoding: str) -> str:
    """The charset's canonical name (gbk, utf-8); a ValueError for an unknown one."""
    import codecs

    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise ValueError(f"encoding {encoding!r} is not a known charset") from None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JdbcSource(_Strict):
    kind: Literal["jdbc"]
    connection: str = settings.SOURCE_CONN_ID
    table: str | None = None
    query: str | None = None
    partition_column: str | None = None
    num_partitions: Annotated[int, Field(ge=1, le=256)] = 4
    fetch_size: Annotated[int, Field(ge=100)] = 10_000

    @model_validator(mode="after")
    def _table_or_query(self) -> JdbcSource:
        if (self.table is None) == (self.query is None):
            raise ValueError("give exactly one of table or query")
        if self.table is not None and not _IDENT.fullmatch(self.table):
            raise ValueError(f"table {self.table!r} is not schema.table")
        return self


class FileSource(_Strict):
    kind: Literal["csv", "jsonl", "xml", "xlsx", "parquet"]
    path: str  # a glob under the landing root, or a URI
    encoding: str = "utf-8"  # csv, jsonl, xml: the files' charset (e.g. gbk); the lake is UTF-8
    delimiter: str = ","  # csv
    # csv: the character that escapes a quote inside a quoted field. '"' (the default) is
    # RFC 4180: a quote is doubled ("王""小""二"); '\\' reads exports that write \" instead.
    escape: Literal['"', "\\"] = '"'
    header: bool = True  # csv, xlsx: the first row names the columns
    row_tag: str | None = None  # xml: the element that holds one record
    sheet: str | None = None  # xlsx: the worksheet (default: the first)
    columns: dict[str, str] | None = None  # name -> Spark SQL type; required for csv/jsonl/xml/xlsx
    # csv, xlsx: a file whose header differs from columns (a new or missing column) fails
    # the run, or with quarantine goes whole to the rejects with the difference as reason.
    on_schema_drift: Literal["fail", "quarantine"] = "fail"

    @model_validator(mode="after")
    def _schema_for_text(self) -> FileSource:
        if self.kind != "parquet" and not self.columns:
            raise ValueError(f"{self.kind} sources need columns: an explicit schema (name: type)")
        if self.kind == "xml" and not self.row_tag:
            raise ValueError("xml sources need row_tag: the element that holds one record")
        if self.kind != "csv" and self.escape != '"':
            raise ValueError("escape is only used with kind csv")
        if len(self.delimiter) != 1 or self.delimiter in ('"', self.escape, "\n", "\r"):
            raise ValueError(f"delimiter {self.delimiter!r} must be one character other than the quote and escape")
        return self


class SpatialSource(_Strict):
    """Spatial extraction (item 03): vector files read with geopandas/pyogrio, or a table of
    WKT or lon/lat columns. Owned by govops.pipelines spatial support."""

    kind: Literal["spatial"]
    path: str  # a glob under the landing root, or a URI; shapefile: the .shp files
    format: Literal["geojson", "shapefile", "geopackage", "wkt_csv", "lonlat_csv"]
    layer: str | None = None  # geopackage: the layer (default: the first)
    crs: str | None = None  # the CRS when the file does not say (e.g. EPSG:4326); a file that says another fails
    wkt_column: str | None = None  # wkt_csv
    lon_column: str | None = None  # lonlat_csv
    lat_column: str | None = None  # lonlat_csv
    # shapefile, csv: the charset (e.g. gbk). Default: UTF-8 for CSV; for a shapefile its .cpg,
    # else GDAL's guess from the .dbf. GeoJSON and GeoPackage are UTF-8 by definition.
    encoding: str | None = None
    # Opt-in cleansing: write invalid geometries repaired by shapely.make_valid (counted in
    # the manifest) instead of rejecting them. Off by default: nothing is repaired silently.
    make_valid: bool = False

    @model_validator(mode="after")
    def _format_fields(self) -> SpatialSource:
        used_by = {"wkt_column": "wkt_csv", "lon_column": "lonlat_csv", "lat_column": "lonlat_csv",
                   "layer": "geopackage"}  # fmt: skip
        for name, fmt in used_by.items():
            if getattr(self, name) is not None and self.format != fmt:
                raise ValueError(f"{name} is only used with format {fmt}")
            if getattr(self, name) is None and self.format == fmt and name != "layer":  # layer: the first by default
                raise ValueError(f"format {fmt} needs {name}")
        utf8 = self.encoding is None or _charset(self.encoding) == "utf-8"
        if not utf8 and self.format in ("geojson", "geopackage"):
            raise ValueError(f"{self.format} is UTF-8 by definition: drop encoding")
        if self.crs is not None:
            from pyproj import CRS
            from pyproj.exceptions import CRSError

            try:
                CRS.from_user_input(self.crs)
            except CRSError:
                raise ValueError(f"crs {self.crs!r} is not a coordinate reference system (e.g. EPSG:4326)") from None
        return self


class StreamSource(_Strict):
    """Realtime / stream extraction (item 02) with Spark Structured Streaming. Owned by
    govops.pipelines stream support."""

    kind: Literal["jsonl_stream", "jdbc_capture", "kafka"]
    path: str | None = None  # jsonl_stream: the landing directory the front-end machines drop into
    encoding: str = "utf-8"  # jsonl_stream: the files' charset (e.g. gbk); the lake is UTF-8
    connection: str = settings.SOURCE_CONN_ID  # jdbc_capture
    table: str | None = None  # jdbc_capture: schema.table
    offset_column: str | None = None  # jdbc_capture: a column that only grows (id, updated_at)
    bootstrap_servers: str | None = None  # kafka
    topic: str | None = None  # kafka
    kafka_options: dict[str, str] = {}  # kafka: more reader options, e.g. kafka.security.protocol
    # jsonl_stream, kafka: the records' schema (name -> Spark SQL type); jdbc_capture: optional,
    # the columns to capture (default: all); their types are the table's (convert with cleansing.casts)
    columns: dict[str, str] | None = None
    max_records_per_batch: Annotated[int, Field(ge=1)] | None = None  # jdbc_capture, kafka
    max_files_per_batch: Annotated[int, Field(ge=1)] | None = None  # jsonl_stream

    @model_validator(mode="after")
    def _kind_fields(self) -> StreamSource:
        needs = {"jsonl_stream": ("path", "columns"), "jdbc_capture": ("table", "offset_column"),
                 "kafka": ("bootstrap_servers", "topic", "columns")}  # fmt: skip
        used_by = {"path": ("jsonl_stream",), "max_files_per_batch": ("jsonl_stream",),
                   "table": ("jdbc_capture",), "offset_column": ("jdbc_capture",), "bootstrap_servers": ("kafka",),
                   "topic": ("kafka",), "kafka_options": ("kafka",),
                   "max_records_per_batch": ("jdbc_capture", "kafka")}  # fmt: skip
        for name in needs[self.kind]:
            if not getattr(self, name):
                raise ValueError(f"{self.kind} sources need {name}")
        for name, kinds in used_by.items():
            if getattr(self, name) not in (None, {}) and self.kind not in kinds:
                raise ValueError(f"{name} is only used with kind {' or '.join(kinds)}")
        reserved = {"subscribe", "subscribepattern", "assign", "kafka.bootstrap.servers", "maxoffsetspertrigger"}
        clash = sorted(k for k in self.kafka_options if k.lower() in reserved)
        if clash:
            raise ValueError(f"kafka_options may not set {', '.join(clash)}: use topic, bootstrap_servers, "
                             "max_records_per_batch")  # fmt: skip
        if self.table is not None and not _IDENT.fullmatch(self.table):
            raise ValueError(f"table {self.table!r} is not schema.table")
        if self.offset_column is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.offset_column):
            raise ValueError(f"offset_column {self.offset_column!r} is not a column name")
        if self.kind == "jdbc_capture" and self.columns and self.offset_column not in self.columns:
            raise ValueError(f"columns must include the offset_column {self.offset_column!r}")
        _charset(self.encoding)
        return self


class Target(_Strict):
    dataset: Annotated[str, Field(pattern=r"^[a-z0-9_]+(/[a-z0-9_]+)*$")]
    zone: Literal["raw", "clean"] = "raw"


class Watermark(_Strict):
    column: str


class Cleansing(_Strict):
    trim: list[str] = []
    required: list[str] = []  # a row missing one of these is rejected, with the reason
    casts: dict[str, str] = {}  # column -> Spark SQL type; a value that does not cast is rejected
    date_formats: dict[str, str] = {}  # column -> pattern, e.g. yyyy/MM/dd
    dedupe_keys: list[str] = []
    max_lengths: dict[str, Annotated[int, Field(ge=1)]] = {}  # column -> characters; longer is rejected


class CatalogEntry(_Strict):
    """The catalog entry (编目) a collection pipeline (item 01) registers for its dataset."""

    name: str  # 资源名称
    source_system: str  # 来源系统
    update_frequency: Literal["实时", "每日", "每周", "每月", "每季度", "每年", "不定期"]
    share_type: Literal["无条件共享", "有条件共享", "不予共享"]
    open_type: Literal["无条件开放", "有条件开放", "不予开放"]
    classification: str  # 资源分类, e.g. 基础库/人口
    columns: dict[str, str] = {}  # column -> description (信息项说明)


class PipelineSpec(_Strict):
    pipeline: str
    description: str
    service_item: str
    department: str
    work_order: str
    schedule: str | None = None
    source: Annotated[JdbcSource | FileSource | SpatialSource | StreamSource, Field(discriminator="kind")]
    target: Target
    mode: Literal["full", "incremental", "stream"] = "full"
    watermark: Watermark | None = None
    cleansing: Cleansing = Cleansing()
    catalog: CatalogEntry | None = None  # item 01: required
    # item 01: the work order a refresh (保鲜) of an onboarded dataset meters against; it is
    # priced lower than new collection. Without it, refreshes meter against work_order.
    refresh_work_order: str | None = None
    owner: str = "govops"

    @field_validator("pipeline")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError("lower-case letters, digits and _; 3-63 characters, starting with a letter")
        return value

    @field_validator("service_item")
    @classmethod
    def _item(cls, value: str) -> str:
        if value not in EXTRACTION_ITEMS:
            known = SERVICE_ITEMS.get(value)
            what = f"{value} ({known.name_zh})" if known else repr(value)
            raise ValueError(
                f"{what} is not an extraction item: use 01 (collection), 02 (stream), 03 (spatial) or 04 (batch)"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> PipelineSpec:
        stream, spatial = isinstance(self.source, StreamSource), isinstance(self.source, SpatialSource)
        if (self.service_item == "02") != stream or (self.mode == "stream") != stream:
            raise ValueError("stream sources, mode stream and service_item 02 go together")
        if (self.service_item == "03") != spatial:
            raise ValueError("spatial sources and service_item 03 go together")
        if (self.service_item == "01") != (self.catalog is not None):
            raise ValueError("collection (service_item 01) registers a catalog entry: give catalog, only for 01")
        if self.refresh_work_order and self.service_item != "01":
            raise ValueError("refresh_work_order is only used by collection (service_item 01)")
        declared = getattr(self.source, "columns", None)
        if self.catalog and declared:
            unknown = sorted(set(self.catalog.columns) - set(declared))
            if unknown:
                raise ValueError(f"catalog.columns describes columns the source does not have: {', '.join(unknown)}")
        if self.mode == "incremental" and self.watermark is None:
            raise ValueError("mode incremental needs watermark.column")
        if self.mode == "full" and self.watermark is not None:
            raise ValueError("watermark is only used with mode incremental")
        return self


def parse_spec(spec_json: str) -> PipelineSpec:
    """A spec handed over as JSON (the Spark jobs' --spec); a SpecError names the field."""
    try:
        return PipelineSpec.model_validate_json(spec_json)
    except ValidationError as exc:
        raise SpecError(f"--spec: {specs.describe(exc)}") from None


def load_spec(path: Path) -> PipelineSpec:
    return specs.load(path, PipelineSpec, "pipeline")


def spec_files(folder: Path | None = None) -> list[Path]:
    """The spec files: GOVOPS_PIPELINES_DIR (for tests and deployments), else include/pipelines."""
    import os

    folder = folder or Path(os.environ.get("GOVOPS_PIPELINES_DIR") or settings.repo_root() / PIPELINES_DIR)
    return sorted(folder.glob("*.yaml"))


def demo_work_orders(specs: list[PipelineSpec]) -> list[tuple[str, str, Decimal]]:
    """(work order, item, difficulty) the specs meter against, for demo fixtures: a refresh
    (保鲜) order is priced at a tenth of new collection."""
    from decimal import Decimal

    orders = {}
    for spec in specs:
        orders.setdefault(spec.work_order, (spec.work_order, spec.service_item, Decimal(1)))
        if spec.refresh_work_order:
            orders.setdefault(spec.refresh_work_order,
                              (spec.refresh_work_order, spec.service_item, Decimal("0.1")))  # fmt: skip
    return list(orders.values())
