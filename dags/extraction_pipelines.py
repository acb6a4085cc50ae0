"""
### Extraction pipelines from specs (批数据抽取 · 采集接入)

One Airflow DAG per YAML spec in `include/pipelines/` (`pipeline_<name>`), built by
`govops.pipelines.factory`: prepare (work order check, inventory, uncommitted loads
removed) -> extract (Spark) -> commit (run log, watermark). A spec that does not validate
is reported as a warning naming its file and field, and the other pipelines still load.
"""

from __future__ import annotations

import warnings

from govops.pipelines.factory import build_dag
from govops.pipelines.spec import SpecError, load_spec, spec_files


class PipelineSpecWarning(UserWarning):
    """A pipeline spec was skipped because it does not validate."""


for _path in spec_files():
    try:
        _spec = load_spec(_path)
    except SpecError as _error:
        warnings.warn(str(_error), PipelineSpecWarning, stacklevel=1)
        continue
    globals()[f"pipeline_{_spec.pipeline}"] = build_dag(_spec, _spec.model_dump_json())
