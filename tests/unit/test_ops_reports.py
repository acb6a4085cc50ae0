"""The operations reports' pure figures: the month in the contract's time zone, the month a
scheduled run reports on, causes, durations and the job volume replayed from the change
record."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from govops.ops.reports import ChangeRow, Durations, EventOrderRow, JobRow, Month, cause_of, job_volume, month_before


@pytest.fixture(autouse=True)
def shanghai(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOVOPS_TIMEZONE", "Asia/Shanghai")


def test_the_month_is_cut_in_the_contract_time_zone() -> None:
    month = Month.of(date(2026, 11, 17))
    assert month.label == "2026-11" and len(month.days()) == 30
    assert datetime(2026, 10, 31, 16, tzinfo=UTC) in month  # 1 Nov 00:00 in Shanghai
    assert datetime(2026, 10, 31, 15, 59, tzinfo=UTC) not in month
    assert datetime(2026, 11, 30, 16, tzinfo=UTC) not in month  # 1 Dec 00:00 in Shanghai
    assert Month.of(date(2026, 12, 1)).end == datetime(2027, 1, 1, tzinfo=month.start.tzinfo)


def test_a_run_on_the_first_reports_the_month_before() -> None:
    assert month_before(datetime(2026, 12, 1, 3, tzinfo=UTC)) == date(2026, 11, 1)
    assert month_before(datetime(2026, 1, 1, 3, tzinfo=UTC)) == date(2025, 12, 1)
    assert month_before(datetime(2026, 11, 30, 17, tzinfo=UTC)) == date(2026, 11, 1)  # already 1 Dec in Shanghai


def order(error: str, title: str = "作业失败：d.t") -> EventOrderRow:
    at = datetime(2026, 11, 2, tzinfo=UTC)
    return EventOrderRow("EV-1", "failed", "open", "urgent", title, "d", "t", None, None, at, None, None, 1, error)


def test_causes_drop_locations_and_numbers() -> None:
    assert cause_of(order("AirflowException: Spark job extract failed: SCHEMA_DRIFT: drop/b2.csv: new column 'x' "
                          "(manifest file:///lake/_manifests/d/r/t.json)\nTraceback ...")) == (
        "AirflowException: Spark job extract failed: SCHEMA_DRIFT: drop/b#.csv: new column 'x'")  # fmt: skip
    assert cause_of(order("")) == "作业失败：d.t"
    assert len(cause_of(order("x" * 500))) == 120


def test_durations_nearest_rank_p90() -> None:
    assert Durations.of([]) == Durations(0, None, None, None, None)
    d = Durations.of([float(h) for h in range(1, 11)])
    assert (d.count, d.mean_h, d.median_h, d.p90_h, d.max_h) == (10, 5.5, 5.5, 9.0, 10.0)
    assert Durations.of([3.0]).p90_h == 3.0


def test_job_volume_replays_removals_and_re_adds() -> None:
    month = Month.of(date(2026, 11, 1))

    def change(dag: str, what: str, day: str) -> ChangeRow:
        return ChangeRow(dag, what, None, None, datetime.fromisoformat(day + "T04:00:00+00:00"))

    changes = [change("a", "new", "2026-10-01"), change("b", "new", "2026-10-01"), change("b", "removed", "2026-11-10"),
               change("b", "re_added", "2026-11-20"), change("c", "new", "2026-11-15"),
               change("a", "removed", "2026-12-02")]  # fmt: skip
    jobs = [JobRow("a", "04", "区公安分局"), JobRow("b", "07", None), JobRow("c", "04", "区公安分局")]
    v = job_volume(month, jobs, changes)
    assert (v.at_start, v.at_end) == (2, 3)
    assert dict(v.changes) == {"removed": 1, "re_added": 1, "new": 1}
    assert v.daily[date(2026, 11, 9)] == 2 and v.daily[date(2026, 11, 10)] == 1 and v.daily[date(2026, 11, 30)] == 3
    assert dict(v.by_item) == {"04": 2, "07": 1} and dict(v.by_department) == {"区公安分局": 2, "–": 1}
