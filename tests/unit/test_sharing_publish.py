"""The publishing DAG's pieces that need no server: the interface test cases drawn from the
OpenAPI document, and the refusal to register a set whose tests failed."""

from __future__ import annotations

from pathlib import Path

import pytest

from govops.sharing import interface_tests as it
from govops.sharing.docs import openapi_document, render_page, set_paths
from govops.sharing.publish import InterfaceTestsFailed, register
from govops.sharing.spec import load_set

SPEC = load_set(Path(__file__).resolve().parents[2] / "include/apis/legal_persons.yaml").spec


def test_every_parameter_of_every_interface_gets_cases_from_the_openapi_document() -> None:
    document = openapi_document([SPEC])
    paths = set_paths(document, SPEC.set)
    cases = it.cases(document, SPEC)
    rows = f"/api/sets/{SPEC.set}/rows.json"
    covered = {c.parameter for c in cases if c.interface == rows}
    assert {p["name"] for p in paths[rows]["get"]["parameters"]} <= covered
    limits = {(c.interface, c.params["limit"], c.expected) for c in cases if c.parameter == "limit"}
    assert (rows, "1000", 200) in limits and (rows, "1001", 400) in limits and (rows, "0", 400) in limits
    csv_path = f"/api/sets/{SPEC.set}/rows.csv"
    assert (csv_path, "0", 400) in limits and not any(c.interface == csv_path and c.params == {} for c in cases)
    masked = {c.parameter: c.expected for c in cases if c.kind == "脱敏"}
    assert masked == {"legal_representative": 403}  # sensitive for the test caller (no roles)
    wrong = {c.parameter: c.params[c.parameter] for c in cases if c.interface == rows and c.kind == "无效值"}
    assert wrong["established_on__gte"] == "2020-13-45" and wrong["id"] == "abc" and wrong["id__in"] == "1,x"
    assert len(wrong["name"]) == 1001 and wrong["no_such_parameter"] == "1"
    assert [c.params for c in cases if c.kind == "示例"] == SPEC.examples


def test_the_documentation_page_names_protocol_method_address_and_parameters() -> None:
    page = render_page(openapi_document([SPEC]), [SPEC], base_url="http://api.example")
    assert "方法 <b>GET</b>" in page and "http://api.example/api/sets/legal_persons/rows.xml" in page
    assert "<td><code>established_on__gte</code></td><td>query</td><td>字符串 (日期 YYYY-MM-DD)</td>" in page
    assert "<script" not in page and "//cdn" not in page


def test_a_set_whose_interface_tests_failed_is_neither_registered_nor_metered() -> None:
    tested = {"total": 3, "passed": 2, "failed": 1, "report_uri": "file:///r.html", "failures": ["x: expected 200"]}
    with pytest.raises(InterfaceTestsFailed, match="1 of 3 interface test"):
        register(None, "file:///lake", {"set": SPEC.set}, {}, tested, run_id="r")  # type: ignore[arg-type]
