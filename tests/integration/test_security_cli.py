"""``python -m govops.security``, the people's side of the security services, against a real
ledger: key rotation and state, a label override and its listing, a destruction approval
refused when the requester approves it, and the audit chain check, which fails (exit 1)
once an entry is changed."""

from __future__ import annotations

import json
from datetime import date

import pytest
from sqlalchemy import Engine

from govops.security.__main__ import main
from govops.settlement.workorders import ensure_demo_work_order
from tests.integration.test_security_audit import tamper

pytestmark = pytest.mark.integration


def test_security_cli(fresh_ledger: Engine, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                      ) -> None:
    engine = fresh_ledger  # a database of its own: this test breaks its audit chain on purpose
    monkeypatch.setenv("GOVOPS_DATABASE_URL", engine.url.render_as_string(hide_password=False))

    assert main(["key-rotate", "cli_test_key", "--by", "ops"]) == 0  # no version yet: 1, then 2
    assert main(["key-rotate", "cli_test_key", "--by", "ops"]) == 0
    capsys.readouterr()
    assert main(["key-state", "cli_test_key"]) == 0
    assert json.loads(capsys.readouterr().out) == {"1": "retired", "2": "active"}

    assert main(["label-override", "raw/cli/persons", "phone", "--level", "L4", "--category", "contact",
                 "--by", "dpo", "--reason", "手机号与身份证号关联"]) == 0  # fmt: skip
    capsys.readouterr()
    assert main(["labels", "raw/cli/persons"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert {k: shown["phone"][k] for k in ("grade", "level", "source", "decided_by")} == {
        "grade": "important", "level": "L4", "source": "override", "decided_by": "dpo"}

    ensure_demo_work_order(engine, "WO-CLI-21", "21", on=date.today())
    refused = main(["approve-destruction", "WO-CLI-21", "raw/cli/persons", "dt=2025-01-01",
                    "--requested-by", "dpo", "--approved-by", "dpo"])  # fmt: skip
    assert refused == 2 and "DESTRUCTION_REFUSED" in capsys.readouterr().err

    assert main(["audit-verify"]) == 0
    assert "the chain holds" in capsys.readouterr().out
    with engine.begin() as conn:  # the database refuses the change; its owner can force it, and that shows
        tamper(conn, "UPDATE govops.security_audit_log SET actor = 'someone else' WHERE seq = 2")
    assert main(["audit-verify"]) == 1
    assert "BROKEN at 2: entry 2 was modified" in capsys.readouterr().out
