"""Masking and encryption (catalog item 20, 数据加密、脱敏等控制), metered per record controlled.

**Policies** are configuration: ``include/security/masking.yaml`` (its header lists the
rules and their parameters). :func:`load` reads one policy and refuses a malformed one
naming the file and the field; :func:`resolve` turns it into a rule per column of the
dataset as it is now: the policy's own rules first, then, with ``by_grade``, the default
rule of each column's label grade (``govops.security.grading``), and a column with neither
stops the run unless the policy says ``unlabeled: keep``, which a policy publishing to the
open zone may not say (refused by :func:`load`).

**Rules.** ``partial``, ``generalize`` and ``nullify`` are native Spark expressions;
``hmac`` (HMAC-SHA256 or HMAC-SM3 pseudonyms), ``ff1`` (NIST SP 800-38G format-preserving
encryption) and ``encrypt`` (AES-256-GCM or SM4-GCM, ``v<key version>:<base64>``) run in
Arrow batches (``pandas_udf``) over the vectorized primitives of ``govops.security.ff1`` and
``govops.security.ciphers``. Each keyed rule uses its own sub-key derived from the policy's
data key (``keys.subkey``), so the same data key never serves two algorithms. FF1 and
encrypt are reversible by a holder of the key (:func:`reveal`, audited); the others are not,
and :func:`reveal` refuses them.

**FF1 on identifiers.** The characters outside ``keep_first``/``keep_last`` are encrypted
over the rule's alphabet; with ``check_char: gb11643`` the 18th character of a resident ID
is recomputed rather than encrypted. What is kept is the format, not validity: the length,
the alphabet, the ``keep_first``/``keep_last`` characters in clear, and the check
character's relation to the other 17 (valid when the input's was; a wrong one stays wrong by
the same step, which keeps decryption exact). The region code, the birth date and the
sequence (its parity: the sex) are encrypted with the rest, so an output is almost never a
valid ID number: its region code or birth date fails GB 11643 (a few in 10,000 pass by
chance; ``keep_first: 6`` keeps the region code, and with it the county, in clear). Keeping
outputs valid would mean leaving the birth date in clear too and encrypting only the 3-digit
sequence, 1,000 values per region and day: below FF1's smallest domain (a million) and
found by trying them all. A value that FF1 cannot take (a character outside the alphabet,
too short for the radix) is nullified and counted as ``unencryptable`` in the execution
log, never published in clear.

**Execution log.** One ``govops.security_masking_run`` row per run (the resolved policy as
run, without key material, and its SHA-256) and one ``security_masking_column`` per column:
rule, reversible, key name and version, records controlled (non-null values the rule
changed). The published dataset's commit marker names the run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from govops import settings
from govops.errors import CodedError

RULES = ("keep", "partial", "generalize", "hmac", "ff1", "encrypt", "nullify")
REVERSIBLE = frozenset({"ff1", "encrypt"})
KEYED = frozenset({"hmac", "ff1", "encrypt"})
PUBLISH_ZONES = ("sharing", "open")

_PARAMS: dict[str, dict[str, Any]] = {  # rule -> parameter -> default
    "keep": {},
    "partial": {"keep_first": 0, "keep_last": 0, "mask_char": "*"},
    "generalize": {"to": None, "size": None},
    "hmac": {"algorithm": "hmac-sha256", "length": 64},
    "ff1": {"alphabet": "0123456789", "keep_first": 0, "keep_last": 0, "check_char": "none", "tweak": ""},
    "encrypt": {"algorithm": "aes-256-gcm"},
    "nullify": {},
}
_CHOICES = {
    ("generalize", "to"): ("year", "month", "district", "bucket"),
    ("hmac", "algorithm"): ("hmac-sha256", "hmac-sm3"),
    ("ff1", "check_char"): ("none", "gb11643"),
    ("encrypt", "algorithm"): ("aes-256-gcm", "sm4-gcm"),
}


class PolicyError(CodedError, ValueError):
    code = "MASKING_POLICY_ERROR"


class MaskingError(CodedError):
    code = "MASKING_ERROR"


def policy_file() -> Path:
    return settings.repo_root() / "include" / "security" / "masking.yaml"


@dataclass(frozen=True)
class ColumnRule:
    column: str
    rule: str
    params: dict[str, Any] = field(default_factory=dict)
    origin: str = "policy"  # policy | grade:<level> | unlabeled

    @property
    def reversible(self) -> bool:
        return self.rule in REVERSIBLE

    @property
    def keyed(self) -> bool:
        return self.rule in KEYED

    @property
    def purpose(self) -> str:
        """The sub-key's purpose: one per algorithm, so pseudonyms stay joinable across columns."""
        algorithm = self.params.get("algorithm", "aes-256")
        return f"govops-masking:{self.rule}:{algorithm}"

    def as_json(self) -> dict[str, Any]:
        return {"rule": self.rule, **self.params, "origin": self.origin}


@dataclass(frozen=True)
class PolicySpec:
    """A policy as written in the file."""

    name: str
    source: str
    output: str
    key: str
    by_grade: bool
    unlabeled: str
    columns: dict[str, ColumnRule]
    path: Path


@dataclass(frozen=True)
class Policy:
    """A policy resolved against a dataset's columns and labels: a rule for every column."""

    name: str
    source: str
    output: str
    key: str
    rules: tuple[ColumnRule, ...]

    def as_json(self) -> dict[str, Any]:
        # A list, not a mapping: the column order is the output's, and JSON tools sort keys.
        return {"name": self.name, "source": self.source, "output": self.output, "key": self.key,
                "columns": [{"column": r.column, **r.as_json()} for r in self.rules]}  # fmt: skip

    @property
    def sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.as_json(), sort_keys=True).encode()).hexdigest()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Policy:
        rules = []
        for raw in data["columns"]:
            params = {k: v for k, v in raw.items() if k not in ("column", "rule", "origin")}
            rules.append(ColumnRule(raw["column"], raw["rule"], params, raw.get("origin", "policy")))
        return cls(data["name"], data["source"], data["output"], data["key"], tuple(rules))


def parse_rule(column: str, raw: Any, where: str) -> ColumnRule:
    """One column's rule with its defaults filled in; PolicyError names ``where`` and the field."""
    if not isinstance(raw, Mapping) or "rule" not in raw:
        raise PolicyError(f"{where}: a rule is a mapping with `rule:` one of {', '.join(RULES)}")
    rule = raw["rule"]
    if rule not in _PARAMS:
        raise PolicyError(f"{where}.rule: {rule!r} is not one of {', '.join(RULES)}")
    unknown = sorted(set(raw) - {"rule"} - set(_PARAMS[rule]))
    if unknown:
        raise PolicyError(f"{where}: {rule} takes no {', '.join(unknown)} (it takes: "
                          f"{', '.join(_PARAMS[rule]) or 'nothing'})")  # fmt: skip
    params = {**_PARAMS[rule], **{k: v for k, v in raw.items() if k != "rule"}}
    for (r, name), choices in _CHOICES.items():
        if r == rule and params[name] not in choices:
            raise PolicyError(f"{where}.{name}: {params[name]!r} is not one of {', '.join(choices)}")
    for name in ("keep_first", "keep_last", "length", "size"):
        value = params.get(name)
        if name in params and value is not None and (not isinstance(value, int) or isinstance(value, bool)
                                                     or value < 0):  # fmt: skip
            raise PolicyError(f"{where}.{name}: {value!r} is not a whole number >= 0")
    if rule == "partial" and (not isinstance(params["mask_char"], str) or len(params["mask_char"]) != 1):
        raise PolicyError(f"{where}.mask_char: one character, not {params['mask_char']!r}")
    if rule == "generalize" and params["to"] == "bucket" and not params["size"]:
        raise PolicyError(f"{where}.size: a bucket needs a size > 0")
    if rule == "hmac" and not 8 <= params["length"] <= 64:
        raise PolicyError(f"{where}.length: between 8 and 64 hex characters, not {params['length']}")
    if rule == "ff1":
        alphabet = params["alphabet"]
        if not isinstance(alphabet, str) or len(set(alphabet)) != len(alphabet) or len(alphabet) < 2:
            raise PolicyError(f"{where}.alphabet: at least two distinct characters")
        if params["check_char"] == "gb11643" and alphabet != "0123456789":
            raise PolicyError(f"{where}.check_char: gb11643 needs the decimal alphabet")
    if rule != "generalize":
        params.pop("size", None)
    return ColumnRule(column, rule, params)


def load(name: str, path: Path | None = None) -> PolicySpec:
    import yaml

    path = path or policy_file()
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path}: not valid YAML: {exc}") from None
    policies = (document or {}).get("policies") if isinstance(document, Mapping) else None
    if not isinstance(policies, Mapping):
        raise PolicyError(f"{path}: policies: a mapping of policy name -> policy is required")
    if name not in policies:
        raise PolicyError(f"{path}: policies.{name}: no such policy (have: {', '.join(sorted(policies))})")
    raw, where = policies[name], f"{path}: policies.{name}"
    if not isinstance(raw, Mapping):
        raise PolicyError(f"{where}: a mapping is required")
    for required in ("source", "output"):
        if not isinstance(raw.get(required), str) or raw[required].count("/") < 1:
            raise PolicyError(f"{where}.{required}: a lake dataset <zone>/<path> is required")
    if raw["output"].split("/", 1)[0] not in PUBLISH_ZONES:
        raise PolicyError(f"{where}.output: {raw['output']!r} must be in the {' or '.join(PUBLISH_ZONES)} zone")
    unlabeled = raw.get("unlabeled", "refuse")
    if unlabeled not in ("refuse", "keep"):
        raise PolicyError(f"{where}.unlabeled: {unlabeled!r} is not refuse or keep")
    if unlabeled == "keep" and raw["output"].split("/", 1)[0] == "open":
        raise PolicyError(f"{where}.unlabeled: keep is not allowed for the open zone ({raw['output']}): a column "
                          "without a rule or a label would be published as it is (label the source, or give "
                          "the column a rule)")  # fmt: skip
    columns = raw.get("columns") or {}
    if not isinstance(columns, Mapping):
        raise PolicyError(f"{where}.columns: a mapping of column -> rule is required")
    rules = {str(c): parse_rule(str(c), r, f"{where}.columns.{c}") for c, r in columns.items()}
    return PolicySpec(
        name=name, source=raw["source"], output=raw["output"], key=str(raw.get("key") or name),
        by_grade=bool(raw.get("by_grade", True)), unlabeled=unlabeled, columns=rules, path=path,
    )  # fmt: skip


def resolve(spec: PolicySpec, columns: list[str], labels: Mapping[str, Any], grading: Any) -> Policy:
    """A rule for every column of the dataset: the policy's, else its label's grade default."""
    where = f"{spec.path}: policies.{spec.name}"
    missing = sorted(set(spec.columns) - set(columns))
    if missing:
        raise PolicyError(f"{where}.columns: {', '.join(missing)} not in {spec.source} (it has {', '.join(columns)})")
    rules, unlabeled = [], []
    for column in columns:
        if column in spec.columns:
            rules.append(spec.columns[column])
            continue
        label = labels.get(column)
        if label is not None and spec.by_grade:  # the label's level decides (a person's override included)
            raw = grading.rule_for(label.data_type, label.level) or {"rule": "keep"}
            rule = parse_rule(column, raw, f"grading default of {label.data_type or label.category} ({label.level})")
            rules.append(ColumnRule(column, rule.rule, rule.params, f"grade:{label.level}"))
        elif spec.unlabeled == "keep":
            rules.append(ColumnRule(column, "keep", {}, "unlabeled"))
        else:
            unlabeled.append(column)
    if unlabeled:
        raise MaskingError(
            f"{where}: {', '.join(unlabeled)} of {spec.source} have no rule and no label: label the dataset "
            "(DAG security_labeling) or give them a rule (unlabeled: keep publishes them as they are)"
        )
    return Policy(spec.name, spec.source, spec.output, spec.key, tuple(rules))


# --- the keyed rules over arrays (used in Arrow batches by the Spark job, and by reveal) ---


@dataclass(frozen=True)
class KeyRing:
    """The data key's versions a run may use: ``active`` encrypts, every version decrypts."""

    name: str
    active: int
    versions: Mapping[int, bytes]

    def subkey(self, rule: ColumnRule, version: int | None = None) -> bytes:
        from govops.security.keys import subkey

        v = self.active if version is None else version
        if v not in self.versions:
            raise MaskingError(f"data key {self.name!r} version {v} is not available (destroyed or unknown)")
        length = 16 if rule.params.get("algorithm") == "sm4-gcm" else 32
        return subkey(self.versions[v], rule.purpose, length)


def _ff1_apply(values: np.ndarray, rule: ColumnRule, key: bytes, decrypt: bool) -> np.ndarray:
    """FF1 over the middle of each value (object array, None kept), with numpy's vectorized
    string functions; a present value it cannot take comes out None.

    With ``check_char: gb11643`` the 18th character is not encrypted: it is recomputed for the
    new 17 digits, shifted by however far the original was from its correct value, so a
    valid check character stays valid, a wrong one stays wrong by the same step, and
    decryption gives back the original exactly. The region code and birth date are encrypted
    like the other digits: the output is not a valid ID number (module docstring)."""
    from govops.identifiers import RESIDENT_ID_CHECK_CHARS, resident_id_check_indexes
    from govops.security.ff1 import FF1

    p = rule.params
    alphabet, first, last = p["alphabet"], p["keep_first"], p["keep_last"]
    check = p["check_char"] == "gb11643"
    present = np.flatnonzero(np.not_equal(values, None))
    out = np.full(len(values), None, dtype=object)
    if not len(present):
        return out
    text = values[present].astype(str)
    ok = np.ones(len(text), dtype=bool)
    if check:
        ok &= np.strings.str_len(text) == 18
        given = np.strings.find(RESIDENT_ID_CHECK_CHARS, np.strings.upper(np.strings.slice(text, 17, 18)))
        ok &= given >= 0
        text = np.strings.slice(text, 0, 17)
    lengths = np.strings.str_len(text)
    cipher = FF1(key, radix=len(alphabet), alphabet=alphabet)
    ok &= lengths - first - last >= cipher.min_length  # FF1's smallest domain is a million values
    ok &= np.strings.str_len(np.strings.strip(text, alphabet)) == 0  # only characters of the alphabet
    chosen, chosen_len = text[ok], lengths[ok]
    if len(chosen):
        mids = np.strings.slice(chosen, first, chosen_len - last)
        tweak = str(p["tweak"]).encode()
        mids = np.asarray(cipher.decrypt(mids, tweak) if decrypt else cipher.encrypt(mids, tweak)).astype(str)
        done = np.strings.add(np.strings.add(np.strings.slice(chosen, 0, first), mids),
                              np.strings.slice(chosen, chosen_len - last, chosen_len))  # fmt: skip
        if check:
            shift = (given[ok] - resident_id_check_indexes(chosen)) % 11
            chars = np.array(list(RESIDENT_ID_CHECK_CHARS))
            done = np.strings.add(done, chars[(resident_id_check_indexes(done) + shift) % 11])
        result = np.full(len(text), None, dtype=object)
        result[ok] = done
        out[present] = result
    return out


def transform(values: np.ndarray, rule: ColumnRule, ring: KeyRing) -> np.ndarray:
    """A keyed rule over an object array of strings (None kept)."""
    from govops.security import ciphers

    key = ring.subkey(rule)
    if rule.rule == "hmac":
        return np.asarray(ciphers.pseudonymize(values, key, rule.params["algorithm"], rule.params["length"]),
                          dtype=object)  # fmt: skip
    if rule.rule == "ff1":
        return _ff1_apply(values, rule, key, decrypt=False)
    if rule.rule == "encrypt":
        return np.asarray(ciphers.encrypt_values(values, key, rule.params["algorithm"], ring.active,
                                                 rule.column.encode()), dtype=object)  # fmt: skip
    raise MaskingError(f"{rule.column}: {rule.rule} is not a keyed rule")


def reveal_values(values: np.ndarray, rule: ColumnRule, ring: KeyRing, key_version: int) -> np.ndarray:
    """The clear values of a reversible column; irreversible rules are refused."""
    from govops.security import ciphers

    if not rule.reversible:
        raise MaskingError(f"{rule.column}: {rule.rule} is irreversible: the clear values cannot be recovered")
    if rule.rule == "ff1":  # no version in the ciphertext: the run's version, from the execution log
        return _ff1_apply(values, rule, ring.subkey(rule, key_version), decrypt=True)
    keys = {v: ring.subkey(rule, v) for v in ring.versions}
    return np.asarray(ciphers.decrypt_values(values, keys, rule.params["algorithm"], rule.column.encode()),
                      dtype=object)  # fmt: skip


# --- Spark ---


def mask_dataframe(df: Any, policy: Policy, ring: KeyRing | None) -> Any:
    """The masked DataFrame: the same columns in the same order, each through its rule."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import StringType

    out = []
    for rule in policy.rules:
        source = F.col(f"`{rule.column}`")
        if rule.keyed and ring is None:
            raise MaskingError(f"{rule.column}: {rule.rule} needs the data key {policy.key!r}")
        if rule.rule == "keep":
            column = source
        elif rule.rule == "nullify":
            column = F.lit(None).cast(df.schema[rule.column].dataType)
        elif rule.rule == "partial":
            column = _partial(source.cast("string"), rule)
        elif rule.rule == "generalize":
            column = _generalize(source, rule, df.schema[rule.column].dataType)
        else:
            column = F.pandas_udf(_batch_function(rule, ring), StringType())(source.cast("string"))
        out.append(column.alias(rule.column))
    return df.select(*out)


def _batch_function(rule: ColumnRule, ring: KeyRing | None) -> Any:
    """A keyed rule over one Arrow batch (pandas Series in, Series out)."""
    import pandas as pd

    def run(batch):  # type: ignore[no-untyped-def]
        values = batch.astype(object).where(batch.notna(), None).to_numpy()
        return pd.Series(transform(values, rule, ring), dtype=object)

    # Real classes, not the postponed strings of this module's annotations: Spark reads them.
    run.__annotations__ = {"batch": pd.Series, "return": pd.Series}
    return run


def input_aggregates(policy: Policy) -> list[Any]:
    """Observed on the source as it is read: ``rows``, and ``controlled_<i>`` (non-null values)
    of each column whose rule changes it."""
    from pyspark.sql import functions as F

    return [F.count(F.lit(1)).alias("rows"), *(
        F.count_if(F.col(f"`{r.column}`").isNotNull()).alias(f"controlled_{i}")
        for i, r in enumerate(policy.rules) if r.rule != "keep"
    )]  # fmt: skip


def output_aggregates(policy: Policy) -> list[Any]:
    """Observed on the masked output: ``encrypted_<i>`` (non-null values) of each FF1 column; a
    value present in the source and null here could not be encrypted."""
    from pyspark.sql import functions as F

    return [F.count_if(F.col(f"`{r.column}`").isNotNull()).alias(f"encrypted_{i}")
            for i, r in enumerate(policy.rules) if r.rule == "ff1"]  # fmt: skip


def _partial(c: Any, rule: ColumnRule) -> Any:
    from pyspark.sql import functions as F

    first, last, mask = rule.params["keep_first"], rule.params["keep_last"], rule.params["mask_char"]
    n = F.char_length(c)
    head = F.substring(c, 1, first) if first else F.lit("")
    tail = F.substring(c, -last, last) if last else F.lit("")
    middle = F.repeat(F.lit(mask), n - first - last)
    # A value no longer than what is kept is masked whole: keeping it would publish it.
    return F.when(n > first + last, F.concat(head, middle, tail)).otherwise(F.repeat(F.lit(mask), n))


def _generalize(c: Any, rule: ColumnRule, data_type: Any) -> Any:
    from pyspark.sql import functions as F
    from pyspark.sql.types import DateType, TimestampType

    to = rule.params["to"]
    if to in ("year", "month"):
        from govops.security.detectors import parse_date

        # Text and yyyyMMdd numbers in the formats the birth-date detector reads; a value that
        # holds no date is published as NULL (never as it is).
        as_date = c if isinstance(data_type, DateType | TimestampType) else parse_date(c)
        return F.year(as_date).cast("string") if to == "year" else F.date_format(as_date, "yyyy-MM")
    if to == "district":  # the address parser of spatial verification, cut after the district
        from govops.spatial.address import java_down_to_district_expression

        district = F.expr(java_down_to_district_expression(f"`{rule.column}`"))
        return F.when(district != "", district)  # no district found: nothing published
    size = rule.params["size"]
    low = (F.floor(c.cast("double") / size) * size).cast("long")
    return F.concat(low.cast("string"), F.lit("-"), (low + size - 1).cast("string"))


# --- the execution log, and reveal ---


def record_run(engine: Any, manifest: Mapping[str, Any], *, by: str = "govops") -> dict[str, Any]:
    """The execution log of a masking job's manifest (idempotent per run) and its audit entry."""
    from sqlalchemy import text

    from govops.security import audit

    run, output = manifest["run"], manifest["outputs"][0]
    with engine.begin() as conn:
        found = conn.execute(
            text("SELECT id FROM govops.security_masking_run WHERE dag_id = :d AND run_id = :r AND dataset = :s"),
            {"d": run["dag_id"], "r": run["run_id"], "s": output["policy"]["source"]},
        ).scalar()
        if found is not None:  # a re-run replaces its log; it is audited again
            conn.execute(text("DELETE FROM govops.security_masking_run WHERE id = :id"), {"id": found})
        run_id = conn.execute(
            text("""INSERT INTO govops.security_masking_run (dag_id, run_id, dataset, output_dataset, policy,
                           policy_sha256, rows_controlled, work_order_id)
                    VALUES (:d, :r, :s, :o, CAST(:p AS jsonb), :sha, :rows, :wo) RETURNING id"""),
            {"d": run["dag_id"], "r": run["run_id"], "s": output["policy"]["source"], "o": output["dataset"],
             "p": json.dumps(output["policy"], ensure_ascii=False), "sha": output["policy_sha256"],
             "rows": output["rows"], "wo": run.get("work_order_id")},
        ).scalar_one()  # fmt: skip
        conn.execute(
            text("""INSERT INTO govops.security_masking_column (masking_run_id, column_name, rule, reversible,
                           key_name, key_version, records_controlled)
                    VALUES (:id, :column, :rule, :reversible, :key_name, :key_version, :records_controlled)"""),
            [{"id": run_id, **{k: c[k] for k in ("column", "rule", "reversible", "key_name", "key_version",
                                                  "records_controlled")}} for c in output["columns"]],
        )  # fmt: skip
        seq = audit.append(conn, actor=by, action="masking.run", dataset=output["policy"]["source"], details={
            "run": f"{run['dag_id']}/{run['run_id']}", "output": output["dataset"], "rows": output["rows"],
            "policy": output["policy"]["name"], "policy_sha256": output["policy_sha256"],
            "columns": {c["column"]: c["rule"] for c in output["columns"] if c["rule"] != "keep"},
        })  # fmt: skip
    return {"masking_run_id": run_id, "audit_seq": seq, "output": output["dataset"], "rows": output["rows"],
            "columns": output["columns"]}  # fmt: skip


def reveal(engine: Any, *, output: str, column: str, values: list[str | None], by: str, reason: str) -> list[Any]:
    """The clear values of a reversible column of a published dataset, for a holder of the key:
    the rule and key version come from the execution log of the run that published it (the
    latest for ``output``); audited with who, why and how many, never the values."""
    from sqlalchemy import text

    from govops.security import audit, keys

    with engine.begin() as conn:
        row = conn.execute(
            text("""SELECT r.dag_id, r.run_id, r.policy, c.key_version FROM govops.security_masking_run r
                      JOIN govops.security_masking_column c ON c.masking_run_id = r.id AND c.column_name = :c
                     WHERE r.output_dataset = :o ORDER BY r.finished_at DESC, r.id DESC LIMIT 1"""),
            {"o": output, "c": column},
        ).first()  # fmt: skip
        if row is None:
            raise MaskingError(f"no masking run published {output!r} with a column {column!r}")
        policy = Policy.from_json(row.policy)
        rule = next(r for r in policy.rules if r.column == column)
        if not rule.reversible:
            raise MaskingError(f"{output}.{column}: {rule.rule} is irreversible: the clear values cannot be recovered")
        ring = KeyRing(policy.key, row.key_version, keys.key_versions(conn, policy.key))
        clear = reveal_values(np.array(values, dtype=object), rule, ring, row.key_version)
        audit.append(conn, actor=by, action="masking.reveal", dataset=output, details={
            "column": column, "values": len(values), "reason": reason, "run": f"{row.dag_id}/{row.run_id}",
        })  # fmt: skip
    return list(clear)


def dataset_columns(lake_root: str, dataset: str) -> list[str]:
    """A published Parquet dataset's columns, from its files' footers (pyarrow, any Hadoop-like URI)."""
    import pyarrow.dataset as ds
    from pyarrow import fs

    filesystem, path = fs.FileSystem.from_uri(f"{lake_root.rstrip('/')}/{dataset}")
    try:
        return list(ds.dataset(path, format="parquet", filesystem=filesystem).schema.names)
    except (FileNotFoundError, OSError) as exc:
        raise MaskingError(f"{dataset}: not a readable Parquet dataset in the lake ({exc})") from None


def prepare(engine: Any, name: str, lake_root: str, *, source: str | None = None) -> Policy:
    """Load the policy, read the source's columns and labels, resolve a rule for each column.
    ``source`` reads another copy of the policy's source instead (the governance chain reads
    the batch its quality gate promoted to the clean zone); its own labels apply."""
    from dataclasses import replace

    from govops.security import grading, labeling

    spec = load(name)
    if source is not None:
        spec = replace(spec, source=source)
    columns = dataset_columns(lake_root, spec.source)
    with engine.connect() as conn:
        labels = labeling.current_labels(conn, spec.source)
    return resolve(spec, columns, labels, grading.load())
