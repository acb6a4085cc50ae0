"""Masking and encryption (数据加密、脱敏等控制, item 20): publish a controlled copy of a lake
dataset in the sharing or open zone, one rule per column (govops.security.masking).

    spark-submit --py-files govops.zip spark_jobs/mask_dataset.py <contract arguments> \
        --policy-json '<resolved policy>'

The resolved policy (rules and parameters, no key material) comes from the Airflow task that
read the policy file and the labels. The data key's versions come from the environment
variable GOVOPS_DATA_KEY_SECRET (set by SparkJobOperator from the key store, never among the
job's arguments; Spark redacts it where it shows the environment), which the job removes
from its environment as soon as it has read it.

Output: <lake>/<policy output>, staged and swapped in, its commit marker naming the run and
the policy's SHA-256. The manifest holds, per column, the rule and the records controlled;
metered per record (万条) of the dataset controlled.
"""

from __future__ import annotations

import json
import os

from govops.spark import job


def mask(ctx: job.JobContext) -> None:
    from pyspark.sql import Observation

    from govops.security.keys import JOB_ENV, decode_for_job
    from govops.security.masking import KeyRing, Policy, input_aggregates, mask_dataframe, output_aggregates

    policy = Policy.from_json(json.loads(ctx.args.policy_json))
    payload = os.environ.pop(JOB_ENV, None)
    ring = None
    if payload:
        name, active, versions = decode_for_job(payload)
        ring = KeyRing(name, active, versions)
    source = f"{ctx.lake_root}/{policy.source}"
    read, written = Observation("read"), Observation("written")
    df = ctx.spark.read.parquet(source).observe(read, *input_aggregates(policy))
    masked, after_aggregates = mask_dataframe(df, policy, ring), output_aggregates(policy)
    if after_aggregates:  # only FF1 columns need the output counted
        masked = masked.observe(written, *after_aggregates)
    zone, dataset = policy.output.split("/", 1)
    staged = ctx.staged_output(zone, dataset)
    with ctx.timed("mask_s"):  # one pass: read, mask, write, and both observations
        masked.write.mode("overwrite").parquet(staged.staging)
    figures, after = read.get, (written.get if after_aggregates else {})
    rows = int(figures["rows"])
    columns = []
    for i, rule in enumerate(policy.rules):
        controlled = int(figures.get(f"controlled_{i}", 0))
        columns.append({
            "column": rule.column, "rule": rule.rule, "reversible": rule.reversible, "origin": rule.origin,
            "key_name": ring.name if rule.keyed and ring else None,
            "key_version": ring.active if rule.keyed and ring else None,
            "records_controlled": controlled,
            "unencryptable": controlled - int(after[f"encrypted_{i}"]) if rule.rule == "ff1" else 0,
        })  # fmt: skip
    staged.commit({"run": ctx.run, "rows": rows, "masking": {"policy": policy.name, "policy_sha256": policy.sha256}})
    ctx.counts.update(read=rows, written=rows, rejected=0)
    ctx.inputs.append({"kind": "parquet", "uri": source, "rows": rows})
    ctx.outputs.append({"kind": "masked", "uri": staged.target, "dataset": policy.output, "rows": rows,
                        "policy": policy.as_json(), "policy_sha256": policy.sha256, "columns": columns})  # fmt: skip
    ctx.metering.append({"service_item": "20", "unit": "record", "quantity": rows, "records": rows,
                         "data_source": policy.output})  # fmt: skip


if __name__ == "__main__":
    p = job.parser(__doc__)
    p.add_argument("--policy-json", required=True, help="the resolved policy (govops.security.masking.Policy)")
    job.run("mask_dataset", p, mask)
