"""The bundled analysis spec's Spark SQL (include/analytics/service_events_monthly.yaml) over
the sample service events, in the session's Spark, against figures computed with pandas:
grouped summaries, a monthly time series with its change, descriptive statistics."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from govops.analytics.spec import load_spec
from govops.security.archive_sample import write_sample_events

pytestmark = pytest.mark.integration
SPEC = load_spec(Path(__file__).resolve().parents[2] / "include/analytics/service_events_monthly.yaml")


def test_monthly_analysis_figures_equal_pandas(spark, tmp_path: Path) -> None:
    dataset = SPEC.inputs["events"].dataset
    write_sample_events(tmp_path.as_uri(), dataset, start=date(2024, 12, 1), end=date(2025, 4, 30), every_days=5,
                        rows_per_day=25)  # fmt: skip
    spark.read.parquet(str(tmp_path / dataset)).createOrReplaceTempView("events")
    params = {"from_date": "2025-01-01"}
    got = {name: [r.asDict() for r in spark.sql(out.sql, args=params).collect()] for name, out in SPEC.outputs.items()}
    for name, out in SPEC.outputs.items():
        assert all(list(row) == list(out.columns) for row in got[name]), name

    events = pq.read_table(tmp_path / dataset).to_pandas()
    events["event_date"] = events["event_date"].astype(str)
    events = events[events["event_date"] >= "2025-01-01"].assign(month=lambda f: f["event_date"].str[:7])
    by_month = events.groupby(["month", "department"]).size()
    assert [(r["month"], r["department"], r["events"]) for r in got["by_month_department"]] == [
        (m, d, int(n)) for (m, d), n in by_month.items()
    ]
    totals = events.groupby("month").size()
    assert [(r["month"], r["events"], r["change"]) for r in got["monthly_trend"]] == [
        (m, int(n), None if i == 0 else int(n - totals.iloc[i - 1])) for i, (m, n) in enumerate(totals.items())
    ]
    daily = events.groupby(["event_type", "event_date"]).size()
    for row in got["daily_stats"]:
        per_day = daily[row["event_type"]]
        assert (row["days"], row["events"], row["min"], row["max"]) == (
            len(per_day), int(per_day.sum()), per_day.min(), per_day.max()
        )  # fmt: skip
        assert float(row["mean"]) == pytest.approx(per_day.mean(), abs=1e-4)
        assert float(row["std"]) == pytest.approx(per_day.std(ddof=1), abs=1e-4)
        assert float(row["median"]) == pytest.approx(per_day.median())
    assert sorted(r["event_type"] for r in got["daily_stats"]) == sorted(daily.index.get_level_values(0).unique())
