"""Interface-set specs (include/apis): a bad spec is refused naming file and field (issue 19)."""

from __future__ import annotations

from pathlib import Path

import pytest

from govops.sharing.spec import load_all, load_set

REPO = Path(__file__).resolve().parents[2]
GOOD = (REPO / "include" / "apis" / "legal_persons.yaml").read_text(encoding="utf-8")


def test_the_bundled_sets_validate() -> None:
    sets, errors = load_all(REPO / "include" / "apis")
    assert errors == [] and "legal_persons" in sets
    assert sets["legal_persons"].spec.masking["legal_representative"].clear_for == ["market_regulation"]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("max_page_size: 1000", "max_page_size: lots", "max_page_size: Input should be a valid integer"),
        ("key: id", "key: nope", "key: 'nope' is not one of the fields"),
        ("  uscc: [eq, in]", "  uscc: [eq, between]", "filters.uscc: 'between' is not an operator of a string field"),
        (
            "sort: [established_on, updated_at]",
            "sort: [legal_representative]",
            "sort: legal_representative is sensitive (masking) and cannot be a sort key",
        ),
        ("{rule: partial, keep_first: 1}", "{rule: ff1}", "masking.legal_representative.rule: ff1 is not applied"),
        (
            "{rule: partial, keep_first: 1}",
            "{rule: partial, keep_first: -1}",
            "masking.legal_representative.rule.keep_first: -1 is not a whole number",
        ),
        (
            "dataset: sharing/",
            "dataset: raw/",
            "dataset: 'raw/market_regulation/legal_persons' must be a dataset of the sharing or open zone",
        ),
        ("open_type: 共享", "open_type: 无条件开放", "open_type: 无条件开放 needs a dataset of the open zone"),
        ("  rate_per_second: 20\n", "", "sla.rate_per_second: Field required"),
    ],
)
def test_a_bad_spec_names_file_and_field(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in GOOD
    (tmp_path / "legal_persons.yaml").write_text(GOOD.replace(old, new, 1), encoding="utf-8")
    (tmp_path / "other.yaml").write_text(GOOD.replace("set: legal_persons", "set: other"), encoding="utf-8")
    sets, errors = load_all(tmp_path)
    assert list(sets) == ["other"]  # the others still serve
    assert len(errors) == 1 and errors[0].startswith(f"SPEC_INVALID: {tmp_path / 'legal_persons.yaml'}: ")
    assert message in errors[0], errors[0]


def test_the_set_name_matches_the_file(tmp_path: Path) -> None:
    path = tmp_path / "renamed.yaml"
    path.write_text(GOOD, encoding="utf-8")
    with pytest.raises(Exception, match="set: 'legal_persons' must match the file name 'renamed'"):
        load_set(path)
