"""The sample district: determinism, and defect counts that a re-validation reproduces."""

from __future__ import annotations

import json

import numpy as np
import pytest
import shapely

from govops.identifiers import is_valid_mobile, resident_id_problem, uscc_problem
from govops.sample_data import DefectCounts, SampleConfig, build_frames, defect_kinds, generate
from govops.sample_data.generator import load_boundary


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    out = tmp_path_factory.mktemp("sample")
    frames, report = generate(SampleConfig(seed=11, persons=400, files=12), out)
    return frames, report, out


def test_row_counts_follow_the_config(sample) -> None:
    frames, report, _ = sample
    assert len(frames.persons) == 400 + 5  # plus the injected duplicates
    assert len(frames.legal_persons) == 160 and len(frames.addresses) == 240
    assert report.rows["public_security.persons"] == 405 and report.rows["events"] == 800
    assert {d.kind for d in report.defects} == set(defect_kinds())


def test_identifier_defects_reconcile_with_revalidation(sample) -> None:
    frames, report, _ = sample
    problems = frames.persons["id_number"].map(resident_id_problem)
    assert (problems == "check_digit").sum() == report.count("bad_id_check_digit") == 5
    assert (problems == "birth_date").sum() == report.count("bad_id_birth_date") == 3
    assert problems.isna().sum() == 405 - 8
    assert (~frames.persons["phone"].map(is_valid_mobile)).sum() == report.count("bad_phone") == 4
    assert frames.persons["name"].isna().sum() == report.count("missing_name") == 5
    assert (frames.legal_persons["uscc"].map(uscc_problem) == "check_char").sum() == 4
    assert frames.legal_persons["uscc"].map(uscc_problem).isna().sum() == 156
    content = frames.persons.drop(columns=["id"]).astype(str)
    assert content.duplicated().sum() == report.count("duplicate_person") == 5


def test_reported_ids_point_at_the_defective_rows(sample) -> None:
    frames, report, _ = sample
    bad_check = next(d for d in report.defects if d.kind == "bad_id_check_digit")
    rows = frames.persons.set_index("id").loc[bad_check.ids, "id_number"]
    assert set(rows.map(resident_id_problem)) == {"check_digit"}


def test_coordinates_are_inside_the_district_except_the_injected_ones(sample) -> None:
    frames, report, _ = sample
    a = frames.addresses
    inside = shapely.contains_xy(load_boundary(), a["lon"].fillna(0).to_numpy(), a["lat"].fillna(0).to_numpy())
    injected = sum(report.count(k) for k in ("missing_coordinates", "coordinates_out_of_range",
                                             "coordinates_swapped", "coordinates_placeholder"))
    assert (~inside).sum() == injected == 11
    assert a["lon"].isna().sum() == 3 and (a["lon"] > 180).sum() == 3 and (a["lon"] == 0).sum() == 2
    assert (a["lat"] > 100).sum() == 3  # swapped: a longitude in the latitude column


def test_file_side_defects(sample) -> None:
    _, report, out = sample
    lines = [line for f in sorted((out / "events").glob("*.jsonl")) for line in f.read_text().splitlines()]
    broken = 0
    for line in lines:
        try:
            json.loads(line)
        except json.JSONDecodeError:
            broken += 1
    assert len(lines) == 800 and broken == report.count("malformed_event_lines") == 4

    header, *rows = (out / "exports/persons.csv").read_text(encoding="utf-8").splitlines()
    width = header.count(",")
    assert sum(r.count(",") < width for r in rows) == report.count("malformed_csv_rows") == 3
    with pytest.raises(UnicodeDecodeError):
        (out / "exports/addresses.csv").read_text(encoding="utf-8")
    assert "青浦区" in (out / "exports/addresses.csv").read_text(encoding="gbk")

    catalog = json.loads((out / "catalog.json").read_text(encoding="utf-8"))
    assert len(catalog) == 12 + 2
    assert sum(not (out / e["file_path"]).exists() for e in catalog) == report.count("missing_files") == 2
    required = ("name", "provider_department", "source_system", "update_frequency", "classification")
    assert sum(any(not e[k] for k in required) for e in catalog) == report.count("incomplete_catalog_entries") == 3
    saved = json.loads((out / "sample_report.json").read_text(encoding="utf-8"))
    assert {d["kind"]: d["count"] for d in saved["defects"]}["unreadable_files"] == 2


def test_same_seed_same_data_other_seed_other_data() -> None:
    a, b = build_frames(SampleConfig(seed=5, persons=300)), build_frames(SampleConfig(seed=5, persons=300))
    c = build_frames(SampleConfig(seed=6, persons=300))
    assert a.persons.equals(b.persons) and a.addresses.equals(b.addresses)
    assert not a.persons["id_number"].equals(c.persons["id_number"])
    assert a.report.to_dict() == b.report.to_dict()


def test_too_many_defects_for_the_rows_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="legal_persons: 40 defects requested"):
        build_frames(SampleConfig(persons=50, defects=DefectCounts(bad_uscc_check_char=37)))


def test_defects_can_be_turned_off() -> None:
    frames = build_frames(SampleConfig(persons=200, defects=DefectCounts(**dict.fromkeys(defect_kinds(), 0))))
    assert frames.persons["id_number"].map(resident_id_problem).isna().all()
    assert len(frames.persons) == 200
    assert np.isfinite(frames.addresses[["lon", "lat"]].to_numpy()).all()
