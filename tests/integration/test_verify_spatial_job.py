"""spark_jobs/verify_spatial.py as a real spark-submit program: every reason code on a
batch with known defects, and a batch recorded in GCJ-02 detected and converted."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from govops import coords
from govops.sample_data import SampleConfig, build_frames
from govops.spark import manifest as manifests
from govops.spatial import sample

from . import spark_submit

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def library() -> Any:
    return sample.clean_library(build_frames(SampleConfig(seed=4, persons=3000)).addresses)


def verify(tmp_path: Path, library: Any, records: Any, run_id: str, *, reference: bool = True,
           chunk_rows: int | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:  # fmt: skip
    lake = tmp_path / "lake"
    (lake / "raw/ref").mkdir(parents=True, exist_ok=True)
    (lake / f"raw/{run_id}").mkdir(parents=True)
    pq.write_table(pa.Table.from_pandas(library, preserve_index=False), lake / "raw/ref/part-0.parquet")
    pq.write_table(pa.Table.from_pandas(records, preserve_index=False), lake / f"raw/{run_id}/part-0.parquet",
                   row_group_size=chunk_rows)  # fmt: skip
    uri = manifests.manifest_uri(lake.as_uri(), "verify", run_id, "verify", -1)
    result = spark_submit.run("verify_spatial", {
        "dag-id": "verify", "run-id": run_id, "task-id": "verify", "work-order-id": "WO-T",
        "lake-root": lake.as_uri(), "manifest": uri, "input": f"{lake.as_uri()}/raw/{run_id}",
        "reference": f"{lake.as_uri()}/raw/ref" if reference else None, "dataset": run_id, "district": "青浦区",
        "option": f"chunk_rows={chunk_rows}" if chunk_rows else None,
    })  # fmt: skip
    manifest = manifests.read(uri)
    assert result.returncode == 0, manifest.get("error") or result.stderr[-3000:]
    rows = pq.ParquetDataset(lake / "verified" / run_id).read().to_pylist()
    return manifest, rows


def test_every_reason_and_outcome(tmp_path: Path, library: Any) -> None:
    records, expected = sample.new_records(library, 1500, seed=2)  # distinct addresses
    manifest, rows = verify(tmp_path, library, records, "wgs")
    output = manifest["outputs"][0]
    assert output["batch_system"] == "WGS-84" and manifest["counts"]["read"] == 1500
    flagged: dict[str, list[str]] = {}
    for row in rows:
        for reason in filter(None, row["reasons"].split(";")):
            flagged.setdefault(reason, []).append(row["record_id"])
    assert {k: sorted(v) for k, v in flagged.items()} == expected
    assert output["reasons"] == {k: 5 for k in expected}
    assert output["outcomes"] == {"verified": 1450, "corrected": 5, "field_verification": 45}
    # A swapped pair comes back in the right order.
    by_id = {r["record_id"]: r for r in rows}
    source = records.set_index("id")
    for record_id in expected["SWAPPED"]:
        assert (by_id[record_id]["lon"], by_id[record_id]["lat"]) == (
            float(source.loc[record_id, "lat"]), float(source.loc[record_id, "lon"]))  # fmt: skip
    assert manifest["metering"] == [{"service_item": "10", "unit": "coordinate_point", "quantity": 1500,
                                     "records": 1500, "data_source": "wgs"}]  # fmt: skip


def test_a_gcj02_batch_is_detected_and_converted(tmp_path: Path, library: Any) -> None:
    records, _ = sample.new_records(library, 1000, seed=3, system="GCJ-02", per_defect=2)
    manifest, rows = verify(tmp_path, library, records, "gcj")
    output = manifest["outputs"][0]
    assert output["batch_system"] == "GCJ-02"
    evidence = output["system_evidence"]
    assert evidence["median_error_m"]["GCJ-02"] < 2 < 300 < evidence["median_error_m"]["WGS-84"]
    usable = [r for r in rows if r["lon"] is not None]
    assert all("CRS_SHIFTED" in r["reasons"] for r in usable)
    assert Counter(r["outcome"] for r in rows)["corrected"] == 1000 - 2 * 10 + 2  # swapped ones too
    # Converted back, the surveyed points sit on their references again.
    ref = library.set_index("id")
    clean = [r for r in usable if r["reasons"] == "CRS_SHIFTED"]
    ids = records.set_index("id").loc[[r["record_id"] for r in clean], "address_id"]
    error = coords.distance_m([r["lon"] for r in clean], [r["lat"] for r in clean],
                              ref.loc[ids, "lon"].to_numpy(), ref.loc[ids, "lat"].to_numpy())  # fmt: skip
    assert len(clean) == 1000 - 2 * 10 and error.max() < 3


def test_records_without_an_address_id_match_the_library_by_address_text(tmp_path: Path, library: Any) -> None:
    import pandas as pd

    from govops.spatial import address

    records, expected = sample.new_records(library, 1500, seed=2)
    # The library's standard forms that name one entry only: the rest cannot be matched.
    forms = pd.Series(address.standard_forms(library["address"]).to_pylist())
    unique = set(forms[~forms.duplicated(keep=False)])
    record_forms = pd.Series(address.standard_forms(records["address"]).to_pylist())
    matchable = set(records["id"][record_forms.isin(unique)])
    assert 1400 < len(matchable) < 1500  # the sample library repeats a few forms
    manifest, rows = verify(tmp_path, library, records.drop(columns="address_id"), "bytext")
    output = manifest["outputs"][0]
    assert output["reference_match"] == "address text"
    usable = {r["record_id"] for r in rows if r["lon"] is not None}
    assert output["compared_to_reference"] == len(usable & matchable)
    flagged: dict[str, list[str]] = {}
    for row in rows:
        for reason in filter(None, row["reasons"].split(";")):
            flagged.setdefault(reason, []).append(row["record_id"])
    far = sorted(r for r in expected["FAR_FROM_ADDRESS"] if r in matchable)
    assert far and sorted(flagged.get("FAR_FROM_ADDRESS", [])) == far
    others = {k: v for k, v in expected.items() if k != "FAR_FROM_ADDRESS"}
    assert {k: sorted(v) for k, v in flagged.items() if k != "FAR_FROM_ADDRESS"} == others
    # With ids, the same records are compared to the same places: the distances agree.
    by_text = pd.DataFrame(rows).set_index("record_id")["distance_to_reference_m"]
    _, with_ids = verify(tmp_path, library, records, "byid")
    by_id = pd.DataFrame(with_ids).set_index("record_id")["distance_to_reference_m"]
    both = by_text.dropna().index
    assert len(both) == output["compared_to_reference"]
    assert (by_text[both] - by_id[both]).abs().max() < 1e-6


FULL_WIDTH = str.maketrans("0123456789-", "０１２３４５６７８９－")


def test_chunks_without_ascii_digits_and_a_batch_without_reference(tmp_path: Path, library: Any) -> None:
    """Chunks in which no address holds an ASCII digit (all null, house numbers in full-width
    digits, no house number) verify instead of crashing the job; and a GCJ-02 batch with no
    standard address library to check its system against is not called verified."""
    records, _ = sample.new_records(library, 300, seed=5, system="GCJ-02", per_defect=0)
    text = records["address"].to_numpy(dtype=object)
    text[:100] = None
    text[100:200] = [a.translate(FULL_WIDTH) for a in text[100:200]]
    text[200:] = [re.sub(r"\d+(-\d+)?号$", "", a) for a in text[200:]]
    assert not any(c.isascii() and c.isdigit() for a in text[100:] for c in a)
    manifest, rows = verify(tmp_path, library, records.assign(address=text), "noref", reference=False,
                            chunk_rows=100)  # fmt: skip
    output = manifest["outputs"][0]
    assert manifest["counts"]["read"] == len(rows) == 300
    assert (output["batch_system"], output["crs_checked"], output["crs_note"]) == (
        None, False, "CRS not checked: no reference (no standard address library)")  # fmt: skip
    assert (output["area_code"], output["area"]) == ("310118", ["青浦区"])
    assert "verified" not in output["outcomes"] and output["reasons"]["CRS_NOT_CHECKED"] == 300
    assert output["outcomes"]["crs_not_checked"] + output["outcomes"].get("field_verification", 0) == 300
    # Only the records' own problems are anomalies (here: GCJ-02 points pushed across Qingpu's border).
    assert manifest["outputs"][1]["rows"] == output["outcomes"].get("field_verification", 0) < 30
    by_id = {r["record_id"]: r for r in rows}
    ids = records["id"].tolist()
    assert [by_id[i]["district_named"] for i in ids[:100]] == [""] * 100
    assert {by_id[i]["district_named"] for i in ids[100:]} == {"青浦区"}
    assert [by_id[i]["address"] for i in ids] == text.tolist()  # the source's text, as it was
    # The batch really is about 500 m off: what "verified" used to hide.
    ref = library.set_index("id").loc[records["address_id"]]
    off = coords.distance_m([by_id[i]["lon"] for i in ids], [by_id[i]["lat"] for i in ids],
                            ref["lon"].to_numpy(), ref["lat"].to_numpy())  # fmt: skip
    assert 400 < float(np.median(off)) < 600
