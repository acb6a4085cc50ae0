"""
### Application services from specs (数据统计分析 · 数据报表 · 融合/挖掘建模 · 可视化, items 14-18)

One Airflow DAG per YAML spec in `include/analytics/` (`analytics_<name>`), built by
`govops.analytics.dags`: prepare (work order and difficulty checked) -> analyze (Spark)
[-> report | documents | pages] -> commit (run record, result rows, metering once per
deliverable). A spec that does not validate is reported as a warning naming its file and
field, and the others still load.
"""

from __future__ import annotations

import warnings

from govops.analytics.dags import build_dag
from govops.analytics.spec import load_specs


class AnalyticsSpecWarning(UserWarning):
    """An analytics spec was skipped because it does not validate."""


_specs, _errors = load_specs()
for _error in _errors:
    warnings.warn(str(_error), AnalyticsSpecWarning, stacklevel=1)
for _spec in _specs:
    globals()[_spec.dag_id] = build_dag(_spec)
