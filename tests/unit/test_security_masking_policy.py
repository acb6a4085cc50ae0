"""Masking policies: the shipped file loads, malformed policies are refused naming the file
and the field, and resolution gives every column a rule (the policy's, else its grade's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from govops.security import grading, masking

POLICY = """
policies:
  p:
    source: raw/x/persons
    output: sharing/x/persons
    unlabeled: {unlabeled}
    columns:
{columns}
"""


def _load(tmp_path: Path, columns: str, unlabeled: str = "refuse") -> masking.PolicySpec:
    path = tmp_path / "masking.yaml"
    path.write_text(POLICY.format(columns=columns, unlabeled=unlabeled), encoding="utf-8")
    return masking.load("p", path)


def test_the_shipped_policies_load() -> None:
    spec = masking.load("public_security_persons")
    assert (spec.source, spec.output, spec.key) == (
        "raw/frontdb/public_security/persons", "sharing/public_security/persons", "public_security_persons")
    assert spec.columns["id_number"].rule == "ff1" and spec.columns["id_number"].reversible
    assert spec.columns["phone"].params == {"keep_first": 3, "keep_last": 4, "mask_char": "*"}
    open_zone = masking.load("public_security_persons_open")
    assert open_zone.columns["phone"].params == {"algorithm": "sm4-gcm"}
    assert (open_zone.unlabeled, open_zone.columns["birth_date"].rule, open_zone.columns["birth_date"].params) == (
        "refuse", "generalize", {"to": "year", "size": None})


def test_the_open_zone_never_keeps_unlabeled_columns(tmp_path: Path) -> None:
    path = tmp_path / "masking.yaml"
    path.write_text(POLICY.format(columns="      a: {rule: nullify}", unlabeled="keep").replace(
        "output: sharing/", "output: open/"), encoding="utf-8")  # fmt: skip
    with pytest.raises(masking.PolicyError, match=rf"^MASKING_POLICY_ERROR: {path}: policies\.p\.unlabeled: keep is "
                                                  r"not allowed for the open zone \(open/x/persons\)"):
        masking.load("p", path)
    # Refused by default, a birth date labeled as one is cut to its year by its grade's rule.
    path.write_text(POLICY.format(columns="      a: {rule: nullify}", unlabeled="refuse").replace(
        "output: sharing/", "output: open/"), encoding="utf-8")  # fmt: skip
    policy = masking.resolve(masking.load("p", path), ["a", "csrq"], {"csrq": _Label("birth_date", "L3")},
                             grading.load())  # fmt: skip
    assert [(r.column, r.rule, r.params, r.origin) for r in policy.rules] == [
        ("a", "nullify", {}, "policy"), ("csrq", "generalize", {"to": "year", "size": None}, "grade:L3")]
    with pytest.raises(masking.MaskingError, match="csrq of raw/x/persons have no rule and no label"):
        masking.resolve(masking.load("p", path), ["a", "csrq"], {}, grading.load())


@pytest.mark.parametrize(("columns", "message"), [
    ("      a: {rule: hash}", r"policies\.p\.columns\.a\.rule: 'hash' is not one of keep, partial"),
    ("      a: partial", r"columns\.a: a rule is a mapping"),
    ("      a: {rule: partial, keep: 2}", r"columns\.a: partial takes no keep"),
    ("      a: {rule: partial, keep_first: -1}", r"columns\.a\.keep_first: -1 is not a whole number"),
    ("      a: {rule: partial, mask_char: '**'}", r"columns\.a\.mask_char: one character"),
    ("      a: {rule: hmac, algorithm: md5}", r"columns\.a\.algorithm: 'md5' is not one of hmac-sha256, hmac-sm3"),
    ("      a: {rule: hmac, length: 4}", r"columns\.a\.length: between 8 and 64"),
    ("      a: {rule: generalize, to: bucket}", r"columns\.a\.size: a bucket needs a size"),
    ("      a: {rule: encrypt, algorithm: des}", r"columns\.a\.algorithm: 'des' is not one of aes-256-gcm, sm4-gcm"),
    ("      a: {rule: ff1, alphabet: '0012'}", r"columns\.a\.alphabet: at least two distinct"),
    ("      a: {rule: ff1, alphabet: abcdef, check_char: gb11643}", r"check_char: gb11643 needs the decimal"),
])  # fmt: skip
def test_malformed_rules_are_named(tmp_path: Path, columns: str, message: str) -> None:
    with pytest.raises(masking.PolicyError, match=message) as caught:
        _load(tmp_path, columns)
    assert str(tmp_path / "masking.yaml") in str(caught.value)


def test_malformed_policies_are_named(tmp_path: Path) -> None:
    path = tmp_path / "masking.yaml"
    path.write_text("policies:\n  p:\n    source: raw/x\n    output: raw/y\n", encoding="utf-8")
    with pytest.raises(masking.PolicyError, match=r"policies\.p\.output: 'raw/y' must be in the sharing or open"):
        masking.load("p", path)
    with pytest.raises(masking.PolicyError, match=r"policies\.q: no such policy \(have: p\)"):
        masking.load("q", path)
    path.write_text("policies: [1", encoding="utf-8")
    with pytest.raises(masking.PolicyError, match="not valid YAML"):
        masking.load("p", path)


class _Label:
    """What govops.security.labeling.current_labels gives for a column (data type and level)."""

    def __init__(self, data_type: str | None, level: str) -> None:
        self.data_type, self.category, self.level = data_type, data_type, level


def test_resolve_takes_the_policy_then_the_grade(tmp_path: Path) -> None:
    spec = _load(tmp_path, "      name: {rule: nullify}")
    table = grading.load()  # include/security/grading.yaml
    labels = {"phone": _Label("mobile", "L3"), "note": _Label(None, "L1"), "plate": _Label("license_plate", "L4")}
    policy = masking.resolve(spec, ["name", "phone", "note", "plate"], labels, table)
    assert [(r.column, r.rule, r.params, r.origin) for r in policy.rules] == [
        ("name", "nullify", {}, "policy"),
        ("phone", "partial", {"keep_first": 3, "keep_last": 4, "mask_char": "*"}, "grade:L3"),
        ("note", "keep", {}, "grade:L1"),
        ("plate", "encrypt", {"algorithm": "aes-256-gcm"}, "grade:L4"),  # overridden to L4: masked as L4
    ]
    assert masking.Policy.from_json(policy.as_json()) == policy  # what the job receives is what was resolved
    with pytest.raises(masking.MaskingError, match="extra of raw/x/persons have no rule and no label"):
        masking.resolve(spec, ["name", "extra"], labels, table)
    with pytest.raises(masking.PolicyError, match=r"columns: name not in raw/x/persons \(it has other\)"):
        masking.resolve(spec, ["other"], labels, table)
    kept = masking.resolve(_load(tmp_path, "      name: {rule: nullify}", unlabeled="keep"), ["name", "extra"], {},
                           table)  # fmt: skip
    assert [(r.column, r.rule, r.origin) for r in kept.rules] == [("name", "nullify", "policy"),
                                                                   ("extra", "keep", "unlabeled")]  # fmt: skip
