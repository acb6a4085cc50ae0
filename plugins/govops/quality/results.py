"""A check run's figures as Great Expectations validation results, the score and status,
and the GX data docs site built from them.

The Spark job reports per rule what GX itself reports for a map expectation
(element_count, missing_count, unexpected_count) or an aggregate (observed_value); here
they become an ``ExpectationSuiteValidationResult`` that GX stores and renders like one of
its own, so data docs, checkpoints' actions and any GX tooling keep working.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from govops.quality import datadocs
from govops.quality.suites import DIMENSIONS, Suite

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuiteValidationResult


@dataclass(frozen=True)
class Score:
    score: float  # 0-100
    by_dimension: dict[str, float]
    status: str  # pass / warn / fail
    failed_rules: list[str]  # severity fail, not met
    warned_rules: list[str]  # severity warn, not met


def table_level(figure: dict[str, Any]) -> bool:
    """A rule judged on the table (an aggregate, the schema, a query), not row by row."""
    return figure.get("observed_value") is not None or figure.get("evaluated_by") in ("schema", "query")


def unexpected_percent(figure: dict[str, Any]) -> float | None:
    """GX's unexpected_percent: of the rows considered (not missing)."""
    considered = figure["element_count"] - figure["missing_count"]
    return 100.0 * figure["unexpected_count"] / considered if considered else None


def rule_pass_ratio(figure: dict[str, Any]) -> float:
    """Share of the considered rows that meet a row rule; 1 or 0 for a table-level rule."""
    considered = figure["element_count"] - figure["missing_count"]
    if table_level(figure):
        return 1.0 if figure["success"] else 0.0
    if figure.get("exception"):
        return 0.0
    return 1.0 - figure["unexpected_count"] / considered if considered else 1.0


def score(suite: Suite, figures: list[dict[str, Any]]) -> Score:
    """Per dimension: the mean pass ratio of its rules; overall: the mean over dimensions.
    Status: ``fail`` when a severity-fail rule is not met or the score is under the warn
    threshold; ``warn`` under the pass threshold or when a severity-warn rule is not met."""
    ratios: dict[str, list[float]] = {}
    for f in figures:
        ratios.setdefault(f["dimension"], []).append(rule_pass_ratio(f))
    by_dimension = {d: round(100 * sum(r) / len(r), 2) for d in DIMENSIONS if (r := ratios.get(d))}
    overall = round(sum(by_dimension.values()) / len(by_dimension), 2) if by_dimension else 100.0
    failed = [f["rule"] for f in figures if not f["success"] and f["severity"] == "fail"]
    warned = [f["rule"] for f in figures if not f["success"] and f["severity"] == "warn"]
    if failed or overall < suite.thresholds["warn"]:
        status = "fail"
    elif warned or overall < suite.thresholds["pass"]:
        status = "warn"
    else:
        status = "pass"
    return Score(overall, by_dimension, status, failed, warned)


def _result_dict(figure: dict[str, Any]) -> dict[str, Any]:
    if table_level(figure):
        found = {"observed_value": figure.get("observed_value")}
        if figure.get("evaluated_by") == "query":
            found["details"] = {"unexpected_rows": figure["unexpected_count"]}
        return found
    total, missing, unexpected = figure["element_count"], figure["missing_count"], figure["unexpected_count"]
    return {
        "element_count": total,
        "missing_count": missing,
        "missing_percent": 100.0 * missing / total if total else None,
        "unexpected_count": unexpected,
        "unexpected_percent": unexpected_percent(figure),
        "unexpected_percent_total": 100.0 * unexpected / total if total else None,
        "unexpected_percent_nonmissing": unexpected_percent(figure),
        "partial_unexpected_list": figure.get("partial_unexpected_list") or [],
    }


def validation_result(
    suite: Suite, figures: list[dict[str, Any]], *, run_name: str, run_time: datetime, batch: str,
    extra_meta: dict[str, Any] | None = None,
) -> ExpectationSuiteValidationResult:  # fmt: skip
    """The run as GX's ExpectationSuiteValidationResult, one result per expectation."""
    from great_expectations.core import ExpectationSuiteValidationResult, ExpectationValidationResult
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.expectations.expectation_configuration import ExpectationConfiguration

    by_rule = {f["rule"]: f for f in figures}
    results = []
    for rule, document in zip(suite.rules, suite.document["expectations"], strict=True):
        figure = by_rule[rule.name]
        config = ExpectationConfiguration(
            type=rule.type, kwargs={**rule.kwargs, "batch_id": batch}, meta={**document.get("meta", {}),
            "evaluated_by": figure.get("evaluated_by")}, severity=document.get("severity", "critical"))  # fmt: skip
        error = figure.get("exception")
        # GX's renderer reads the traceback of a result that raised: never leave it empty.
        info = ({"raised_exception": True, "exception_message": error,
                 "exception_traceback": figure.get("traceback") or error} if error else
                {"raised_exception": False, "exception_message": None, "exception_traceback": None})  # fmt: skip
        results.append(ExpectationValidationResult(
            success=bool(figure["success"]) and not error, expectation_config=config,
            result={} if error else _result_dict(figure), exception_info=info,
        ))  # fmt: skip
    successful = sum(1 for r in results if r.success)
    return ExpectationSuiteValidationResult(
        success=successful == len(results),
        results=results,
        suite_name=suite.name,
        statistics={
            "evaluated_expectations": len(results),
            "successful_expectations": successful,
            "unsuccessful_expectations": len(results) - successful,
            "success_percent": 100.0 * successful / len(results) if results else None,
        },
        meta={
            "great_expectations_version": _gx_version(),
            "run_id": RunIdentifier(run_name=run_name, run_time=run_time),
            "batch_spec": {"dataset": suite.dataset},
            "active_batch_definition": {
                "datasource_name": "govops_lake", "data_connector_name": "lake",
                "data_asset_name": suite.dataset, "batch_identifiers": {"run": run_name},
            },
            "validation_time": run_time.isoformat(),
            **(extra_meta or {}),
        },
    )


def _gx_version() -> str:
    import great_expectations as gx

    return gx.__version__


def build_data_docs(project_dir: Path, site_dir: Path, suite: Suite, result: ExpectationSuiteValidationResult) -> Path:
    """Store the suite and the result in a file-backed GX context under ``project_dir`` and
    build its data docs into ``site_dir``, serving their stylesheets, scripts and fonts from
    the site itself (govops.quality.datadocs); returns the page of this result."""
    import great_expectations as gx
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    import govops.quality.expectations  # noqa: F401

    project_dir.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", project_root_dir=str(project_dir))
    site = {
        "class_name": "SiteBuilder",
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(site_dir)},
    }
    sites = context.list_data_docs_sites()
    for name in list(sites):
        if name != "govops":
            context.delete_data_docs_site(name)
    if "govops" in sites:
        context.update_data_docs_site("govops", site)
    else:
        context.add_data_docs_site("govops", site)
    gx_suite = suite.gx_suite()
    existing = {s.name for s in context.suites.all()}
    if suite.name in existing:
        context.suites.delete(suite.name)
    context.suites.add(gx_suite)
    key = ValidationResultIdentifier(
        expectation_suite_identifier=ExpectationSuiteIdentifier(name=suite.name),
        run_id=result.meta["run_id"], batch_identifier=suite.dataset.replace("/", "__"),
    )  # fmt: skip
    context.validation_results_store.set(key, result)
    context.build_data_docs(site_names=["govops"])
    datadocs.localize(site_dir)
    pages = [p["site_url"] for p in context.get_docs_sites_urls(resource_identifier=key, site_name="govops")
             if p.get("site_url")]  # fmt: skip
    if len(pages) != 1:
        raise RuntimeError(f"{suite.name}: GX wrote no data docs page for run {result.meta['run_id']} in {site_dir}")
    return Path(url2pathname(urlparse(pages[0]).path))  # GX's URL is percent-encoded: `:` of a run id is %3A
