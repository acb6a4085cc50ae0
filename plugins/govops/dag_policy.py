"""What every DAG of the project carries: owner, retries, failure recording, tags.

Tags come from one agreed list: the service class and the catalog item (``item:04``), plus
``demo`` and ``ops``. The DagBag policy test enforces it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from govops.service_items import SERVICE_ITEMS

SERVICE_CLASSES = ("governance", "application", "security")
ALLOWED_TAGS = frozenset(
    [*SERVICE_CLASSES, "demo", "ops", *(f"item:{code}" for code in SERVICE_ITEMS)]
)
OWNER = "govops"


def service_tags(item_code: str, *extra: str) -> list[str]:
    """The tags of a DAG that delivers one catalog item: its class and its item code."""
    item = SERVICE_ITEMS[item_code]
    tags = [item.service_class, f"item:{item.code}", *extra]
    unknown = set(tags) - ALLOWED_TAGS
    if unknown:
        raise ValueError(f"tags {sorted(unknown)} are not in govops.dag_policy.ALLOWED_TAGS")
    return tags


@contextmanager
def fail_fast() -> Iterator[None]:
    """Around a task's work: a refusal (a ``CodedError``: a refused work order, a bad spec,
    suite or policy, schema drift…) fails the task at once. Retrying would only repeat it;
    it needs a person. Other errors may be transient and keep their retries."""
    from airflow.sdk.exceptions import AirflowFailException

    from govops.errors import CodedError

    try:
        yield
    except CodedError as exc:
        raise AirflowFailException(str(exc)) from exc


def record_failure(context: Any) -> None:
    """on_failure_callback and on_retry_callback: a row per failed attempt in
    govops.task_failure (``final`` tells the last attempt from one that will be retried).

    Never raises: a broken ledger connection must not hide the task's own failure.
    """
    import logging

    log = logging.getLogger(__name__)
    try:
        from airflow.sdk.exceptions import AirflowFailException
        from sqlalchemy import create_engine, insert

        from govops import settings
        from govops.ledger.models import TaskFailure

        ti = context["ti"]
        params = context.get("params") or {}
        exception = context.get("exception")
        # A fail-fast exception ends the task whatever tries are left: its attempt is the last.
        last = isinstance(exception, AirflowFailException) or ti.max_tries is None or ti.try_number > ti.max_tries
        engine = create_engine(settings.connection_url(settings.LEDGER_CONN_ID))
        try:
            with engine.begin() as conn:
                conn.execute(
                    insert(TaskFailure).values(
                        dag_id=ti.dag_id,
                        run_id=ti.run_id,
                        task_id=ti.task_id,
                        map_index=ti.map_index if ti.map_index is not None else -1,
                        try_number=ti.try_number,
                        work_order_id=params.get("work_order_id"),
                        error=_describe(exception)[:4000],
                        final=last,
                        log_url=getattr(ti, "log_url", None),
                    )
                )
        finally:
            engine.dispose()
    except Exception:
        log.exception("could not record the failure of %s", context.get("ti"))


def _describe(exception: BaseException | None) -> str:
    return "" if exception is None else f"{type(exception).__name__}: {exception}"


def default_args(**overrides: Any) -> dict[str, Any]:
    # GOVOPS_RETRY_DELAY_SECONDS lets tests retry at once; an env lookup is no parse-time I/O.
    delay = timedelta(seconds=float(os.environ.get("GOVOPS_RETRY_DELAY_SECONDS", "60")))
    return {
        "owner": OWNER,
        "retries": 2,
        "retry_delay": delay,
        "retry_exponential_backoff": delay.total_seconds() > 0,
        "on_failure_callback": record_failure,
        "on_retry_callback": record_failure,
        **overrides,
    }
