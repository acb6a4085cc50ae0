"""OpenLineage datasets of a Spark job, from its manifest: what it read (``inputs``) and
wrote (``outputs``), named as the OpenLineage naming spec says.

- a lake location ``file:///lake/raw/x`` -> namespace ``file``, name ``/lake/raw/x``;
  ``hdfs://nn:8020/lake/raw/x`` -> ``hdfs://nn:8020``, ``/lake/raw/x`` (any other scheme
  likewise: ``scheme://authority`` and the path);
- a JDBC source ``jdbc:postgresql://host:5432/db`` with ``table`` ``schema.t`` -> namespace
  ``postgres://host:5432``, name ``db.schema.t`` (a query source: ``db``; the query's own
  tables are not parsed).

Outputs carry the rows and bytes the manifest counted (the ``outputStatistics`` facet).
``SparkJobOperator.get_openlineage_facets_on_complete`` returns ``operator_lineage``; the
provider's listener sends it with the task's COMPLETE event.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

JDBC_SCHEMES = {"postgresql": "postgres"}  # the naming spec's name for the database


def dataset_name(entry: Mapping[str, Any]) -> tuple[str, str]:
    """(namespace, name) of one manifest input or output."""
    uri = str(entry["uri"])
    if uri.startswith("jdbc:"):
        parts = urlsplit(uri.removeprefix("jdbc:"))
        database = parts.path.strip("/")
        table = entry.get("table")
        return f"{JDBC_SCHEMES.get(parts.scheme, parts.scheme)}://{parts.netloc}", (
            f"{database}.{table}" if table else database
        )
    parts = urlsplit(uri)
    if parts.scheme in ("", "file"):
        return "file", parts.path
    return f"{parts.scheme}://{parts.netloc}", parts.path


def operator_lineage(manifest: Mapping[str, Any]) -> Any:  # -> OperatorLineage
    from airflow.providers.openlineage.extractors import OperatorLineage
    from openlineage.client.event_v2 import InputDataset, OutputDataset
    from openlineage.client.facet_v2 import output_statistics_output_dataset

    inputs = [InputDataset(*dataset_name(i)) for i in manifest.get("inputs", [])]
    outputs = []
    for o in manifest.get("outputs", []):
        namespace, name = dataset_name(o)
        facets = {}
        if isinstance(o.get("rows"), int):
            facets["outputStatistics"] = output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                rowCount=o["rows"], size=o.get("bytes")
            )
        outputs.append(OutputDataset(namespace, name, outputFacets=facets))
    return OperatorLineage(inputs=inputs, outputs=outputs)
