"""The project's refusals carry a stable code (``LEDGER_ERROR``, ``SETTLEMENT_REFUSED``…)
that leads their message, so logs and callers can tell them apart by text alone."""

from __future__ import annotations


class CodedError(Exception):
    code = "GOVOPS_ERROR"

    def __str__(self) -> str:
        return f"{self.code}: {super().__str__()}"
