"""The 21 service items of the catalog (seed 000) and the units they are metered in.

The ledger stores raw integer quantities in a base unit (records, tables, points...);
``unit_size`` turns them into the catalog's billing unit (万条 = 10,000 records). Prices,
tiers and catalog versions belong to the settlement catalog; this table only says what an
item may be metered in, so the ledger can refuse nonsense at the door.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True)
class Unit:
    code: str
    billing_name: str  # the unit as the catalog prints it
    unit_size: int  # base units per billing unit


UNITS: Final[dict[str, Unit]] = {
    u.code: u
    for u in (
        Unit("record", "万条", 10_000),
        Unit("coordinate_point", "万坐标点", 10_000),
        Unit("table", "张", 1),
        Unit("task", "个", 1),
        Unit("file", "万个", 10_000),
        Unit("catalog_entry", "个", 1),
        Unit("api_set", "组", 1),
        Unit("year", "年", 1),
        Unit("analysis", "次", 1),
        Unit("report", "张", 1),
        Unit("model", "个", 1),
        Unit("theme_domain", "主题域", 1),
    )
}


@dataclass(frozen=True)
class ServiceItem:
    code: str
    service_class: str  # governance / application / security
    name_zh: str
    name_en: str
    units: tuple[str, ...]  # the first is the default


SERVICE_ITEMS: Final[dict[str, ServiceItem]] = {
    s.code: s
    for s in (
        ServiceItem("01", "governance", "采集接入（库表）", "collection and onboarding", ("record",)),
        ServiceItem("02", "governance", "实时数据/流式数据抽取", "realtime / stream extraction", ("record",)),
        ServiceItem("03", "governance", "空间数据抽取", "spatial extraction", ("coordinate_point",)),
        ServiceItem("04", "governance", "批数据抽取", "batch extraction", ("table",)),
        ServiceItem("05", "governance", "作业调度", "job scheduling", ("task",)),
        ServiceItem("06", "governance", "数据标注服务", "data labeling", ("record",)),
        ServiceItem(
            "07", "governance", "归集端质量检查", "ingestion-side quality check", ("record", "table")
        ),
        ServiceItem(
            "08", "governance", "应用端质量检查", "application-side quality check", ("record", "table")
        ),
        ServiceItem("09", "governance", "非结构化文件的质量检查", "unstructured file check", ("file",)),
        ServiceItem("10", "governance", "空间地理数据核实服务", "spatial verification", ("coordinate_point",)),
        ServiceItem("11", "governance", "数据资产目录质量检查", "catalog quality check", ("catalog_entry",)),
        ServiceItem("12", "application", "数据共享/开放/服务", "sharing / open API set", ("api_set",)),
        ServiceItem("13", "application", "数据共享/开放运营服务", "sharing / open operations", ("year",)),
        ServiceItem("14", "application", "数据统计分析服务", "statistical analysis", ("analysis",)),
        ServiceItem("15", "application", "数据报表服务", "report service", ("report",)),
        ServiceItem("16", "application", "数据融合建模服务", "fusion modeling", ("model",)),
        ServiceItem("17", "application", "数据挖掘建模服务", "mining modeling", ("model",)),
        ServiceItem("18", "application", "可视化展现服务", "visualization", ("theme_domain",)),
        ServiceItem("19", "security", "数据安全评估、审核服务", "security assessment and audit", ("record",)),
        ServiceItem("20", "security", "数据加密、脱敏等控制", "encryption and masking", ("record",)),
        ServiceItem("21", "security", "历史数据的归档及销毁", "archiving and destruction", ("record",)),
    )
}
