"""The people's side of the security services: ``python -m govops.security <command>``
(``./dev python -m govops.security --help``), against the configured ledger database.

    labels DATASET                                  the current labels of a dataset's columns
    label-override DATASET COLUMN --level L4 --category identity --by NAME --reason TEXT
    label-confirm DATASET COLUMN --by NAME [--version N]
    findings [--status open|fixed|reverified]       the assessment's findings
    finding-fixed ID --by NAME --note TEXT          record a finding's rectification
    approve-destruction WORK_ORDER DATASET PARTITION... --requested-by NAME --approved-by NAME
    key-state NAME | key-rotate NAME --by NAME | keys-rewrap --by NAME   (data keys)
    reveal OUTPUT COLUMN VALUE... --by NAME --reason TEXT    clear values of a reversible column
    audit-verify                                    check the audit log's keyed hash chain
    audit-seal --by NAME                            after upgrading: seal the entries from before keying
    certificate-verify FILE                         check a destruction certificate (master key only, no database)

Every command that changes something names who does it, and is written to the audit log.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from govops import settings


def _engine() -> Any:
    from sqlalchemy import create_engine

    return create_engine(settings.connection_url(settings.LEDGER_CONN_ID))


def _print(value: Any) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2, default=str))


def labels(a: argparse.Namespace) -> int:
    from govops.security import labeling

    with _engine().connect() as conn:
        found = labeling.current_labels(conn, a.dataset)
    _print({c: {"data_type": x.data_type, "category": x.category, "grade": x.grade, "level": x.level,
                "version": x.version, "source": x.source, "decided_by": x.decided_by,
                "pending_detection": x.pending_detection} for c, x in found.items()})  # fmt: skip
    return 0


def label_override(a: argparse.Namespace) -> int:
    from govops.security import labeling

    label = labeling.override(_engine(), a.dataset, a.column, category=a.category, level=a.level, by=a.by,
                              reason=a.reason)  # fmt: skip
    print(f"{a.dataset}.{a.column}: version {label.version}, {label.grade} {label.level} ({label.source})")
    return 0


def label_confirm(a: argparse.Namespace) -> int:
    from govops.security import labeling

    label = labeling.confirm(_engine(), a.dataset, a.column, by=a.by, reason=a.reason, version=a.version)
    print(f"{a.dataset}.{a.column}: version {label.version}, {label.grade} {label.level} ({label.source})")
    return 0


def findings(a: argparse.Namespace) -> int:
    from govops.security import assessment

    _print(assessment.findings(_engine(), status=a.status))
    return 0


def finding_fixed(a: argparse.Namespace) -> int:
    from govops.security import assessment

    assessment.mark_fixed(_engine(), a.id, by=a.by, note=a.note)
    print(f"finding {a.id}: fixed; the next assessment re-verifies it")
    return 0


def approve_destruction(a: argparse.Namespace) -> int:
    from govops.security import destruction

    approval = destruction.approve_destruction(_engine(), a.work_order, a.dataset, a.partitions,
                                               requested_by=a.requested_by, approved_by=a.approved_by)  # fmt: skip
    print(f"approval {approval}: {a.approved_by} approved destroying {', '.join(a.partitions)} of {a.dataset}")
    return 0


def key_state(a: argparse.Namespace) -> int:
    from govops.security import keys

    with _engine().connect() as conn:
        _print(dict(keys.key_state(conn, a.name)))
    return 0


def key_rotate(a: argparse.Namespace) -> int:
    from govops.security import keys

    with _engine().begin() as conn:
        print(f"{a.name}: version {keys.rotate_data_key(conn, a.name, by=a.by)} is active")
    return 0


def keys_rewrap(a: argparse.Namespace) -> int:
    from govops.security import keys

    with _engine().begin() as conn:
        print(f"{keys.rewrap_all(conn, by=a.by)} data key version(s) wrapped under the current master key")
    return 0


def reveal(a: argparse.Namespace) -> int:
    from govops.security import masking

    for value in masking.reveal(_engine(), output=a.output, column=a.column, values=a.values, by=a.by,
                                reason=a.reason):  # fmt: skip
        print(value)
    return 0


def audit_verify(a: argparse.Namespace) -> int:
    from govops.security import audit

    with _engine().connect() as conn:
        check = audit.verify(conn)
    print(check.summary())
    return 0 if check.ok else 1


def audit_seal(a: argparse.Namespace) -> int:
    from govops.security import audit

    with _engine().begin() as conn:
        seq = audit.seal(conn, by=a.by)
    print(f"entry {seq} seals the entries from before keying" if seq else "nothing to seal: the chain ends keyed")
    return 0


def certificate_verify(a: argparse.Namespace) -> int:
    from govops.security import destruction

    check = destruction.verify_certificate(a.file)
    state = "" if check.complete is None else (", complete" if check.complete else ", INCOMPLETE")
    print(f"{a.file}: " + (f"valid, {check.reason} ({check.dataset}{state})" if check.ok else
                           f"NOT VALID: {check.reason}"))  # fmt: skip
    return 0 if check.ok else 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m govops.security", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, func: Callable[[argparse.Namespace], int], help_: str) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help_)
        c.set_defaults(func=func)
        return c

    command("labels", labels, "current labels of a dataset").add_argument("dataset")
    c = command("label-override", label_override, "a person sets a column's label")
    c.add_argument("dataset"), c.add_argument("column")
    c.add_argument("--level", required=True), c.add_argument("--category", required=True)
    c.add_argument("--by", required=True), c.add_argument("--reason", required=True)
    c = command("label-confirm", label_confirm, "a person confirms a label version")
    c.add_argument("dataset"), c.add_argument("column"), c.add_argument("--by", required=True)
    c.add_argument("--reason"), c.add_argument("--version", type=int)
    command("findings", findings, "the assessment's findings").add_argument(
        "--status", choices=("open", "fixed", "reverified"))
    c = command("finding-fixed", finding_fixed, "record a finding's rectification")
    c.add_argument("id", type=int), c.add_argument("--by", required=True), c.add_argument("--note", required=True)
    c = command("approve-destruction", approve_destruction, "a second person approves a destruction")
    c.add_argument("work_order"), c.add_argument("dataset"), c.add_argument("partitions", nargs="+")
    c.add_argument("--requested-by", required=True), c.add_argument("--approved-by", required=True)
    command("key-state", key_state, "a data key's versions and states").add_argument("name")
    c = command("key-rotate", key_rotate, "a new active version of a data key")
    c.add_argument("name"), c.add_argument("--by", required=True)
    command("keys-rewrap", keys_rewrap, "after a master-key rotation").add_argument("--by", required=True)
    c = command("reveal", reveal, "clear values of a reversible column")
    c.add_argument("output"), c.add_argument("column"), c.add_argument("values", nargs="+")
    c.add_argument("--by", required=True), c.add_argument("--reason", required=True)
    command("audit-verify", audit_verify, "check the audit log's keyed hash chain")
    command("audit-seal", audit_seal, "seal the audit entries from before keying").add_argument("--by", required=True)
    command("certificate-verify", certificate_verify, "check a destruction certificate file").add_argument("file")
    return p


def main(argv: list[str] | None = None) -> int:
    from govops.errors import CodedError

    a = parser().parse_args(argv)
    try:
        return a.func(a)
    except CodedError as exc:  # a refusal: its message names what is wrong
        print(exc, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
