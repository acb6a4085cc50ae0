"""The project's refusals carry a stable code (``LEDGER_ERROR``, ``SETTLEMENT_REFUSED``…)
that leads their message, so logs and callers can tell them apart by text alone.

A refusal (a bad spec, suite or policy, a refused work order, schema drift…) is not
transient: trying again gives the same answer, so Airflow fails it at once without
retries (``govops.dag_policy.fail_fast`` in tasks; the Spark-job manifest's ``retryable``
for ``SparkJobOperator``).
"""

from __future__ import annotations

import re


class CodedError(Exception):
    code = "GOVOPS_ERROR"

    def __str__(self) -> str:
        return f"{self.code}: {super().__str__()}"


def _subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    return found.union(*(_subclasses(c) for c in found)) if found else found


def is_refusal(exc: BaseException) -> bool:
    """Whether ``exc`` is a CodedError, or carries one raised in a Spark Python worker (a
    PythonException quotes the worker's traceback, ``…SchemaDriftError: SCHEMA_DRIFT: …``)."""
    if isinstance(exc, CodedError):
        return True
    names = "|".join(sorted(c.__name__ for c in _subclasses(CodedError)))
    return bool(names) and re.search(rf"\b(?:{names}): [A-Z][A-Z0-9_]*: ", str(exc)) is not None
