"""A model's deliverables besides its result data (seed 000, 应用建模服务): the design document,
generated from the spec alone, and the model test report, from the run's evaluation output.

``<lake>/reports/analytics/<spec>/<run>/``:
- ``design.html``: purpose, inputs (dataset, data domain, department), the difficulty and its
  basis, the model's table (its Spark SQL and columns), the indicators with their definitions,
  weights and thresholds, the scoring formula, rules and levels (fusion) or the features,
  algorithm and hyperparameters (mining), the held-out split, floors and scenarios;
- ``test_report.html``: the test environment, the method, the metrics on the held-out rows
  against their floors, the confusion counts, the ROC curve and score distribution (inline
  SVG), the weights the model gives and the scenarios with their violations;
- ``<result>.csv``: the result rows, UTF-8 with a BOM.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from govops.analytics import difficulty as dif
from govops.analytics.models import fusion_expressions, split_expression
from govops.analytics.report import page, publish, table_html, write_csv
from govops.analytics.spec import AnalyticsSpec, Model

e = html.escape
SECTIONS = {"environment": "测试环境", "method": "测试方法", "metric": "测试指标（留出数据）",
            "confusion": "混淆矩阵（留出数据）", "weight": "模型权重", "scenario": "测试场景"}  # fmt: skip


def _model(spec: AnalyticsSpec) -> Model:
    if spec.model is None:
        raise ValueError(f"{spec.name}: kind {spec.kind} has no model")
    return spec.model


def _header(spec: AnalyticsSpec, heading: str) -> str:
    [line] = dif.delivery_lines(spec)
    return (f"<h1>{e(spec.title)}：{e(heading)}</h1><p>{e(spec.description)}</p>"
            f"<p>服务事项 {dif.ITEMS[spec.kind]}（{'融合建模' if spec.kind == 'fusion_model' else '挖掘建模'}）"
            f" · 需求部门 {e(spec.department)} · 工单 <code>{e(spec.work_order)}</code>"
            f" · 难度系数 {line.difficulty}（{e(line.basis)}）</p>")  # fmt: skip


def design_document(spec: AnalyticsSpec) -> str:
    """The design document: everything in it comes from the spec."""
    model = _model(spec)
    table = spec.outputs[model.table]
    parts = [_header(spec, "模型设计文档"), "<h2>1 数据来源</h2>",
             table_html(["视图", "数据集", "数据领域", "提供部门"],
                        [[v, i.dataset, i.domain, i.department or ""] for v, i in spec.inputs.items()])]  # fmt: skip
    if spec.parameters:
        parts.append(table_html(["参数", "默认值"], [[k, str(v)] for k, v in spec.parameters.items()]))
    parts += [f"<h2>2 模型宽表：{e(table.title)}</h2><p>每个 <code>{e(model.key)}</code> 一行；"
              f"检验标签 <code>{e(model.label)}</code>（{e(table.columns[model.label])}，0/1）。</p>",
              f"<pre>{e(table.sql or '')}</pre>",
              table_html(["字段", "名称"], [[c, h] for c, h in table.columns.items()])]  # fmt: skip
    if spec.kind == "fusion_model":
        rows = [[c, i.title, i.definition, i.department, i.weight, f"{i.threshold}{i.unit}"]
                for c, i in model.indicators.items()]  # fmt: skip
        expressions = fusion_expressions(model)
        parts += ["<h2>3 指标定义</h2>", table_html(["字段", "指标", "口径", "数据部门", "权重", "满分阈值"], rows),
                  "<p>风险分值 = 100 × Σ 权重 × min(max(指标值, 0) / 满分阈值, 1)，指标值缺失计 0 分：</p>",
                  f"<pre>{e(expressions['score'])}</pre>", "<h2>4 规则与等级</h2>",
                  table_html(["规则", "条件", "等级"], [[r.title, r.when, r.level] for r in model.rules]),
                  table_html(["等级", "最低分值", "预警"],
                             [[lv, b, "是" if lv in model.alert_levels else "否"] for lv, b in model.levels.items()]),
                  "<p>规则优先于分值；预警原因列出达到满分阈值的指标和触发的规则。</p>"]  # fmt: skip
    else:
        rows = [[c, f.title, f.definition, f.department] for c, f in model.features.items()]
        hyper = ", ".join(f"{k}={v}" for k, v in model.hyperparameters.items()) or "默认"
        parts += ["<h2>3 特征定义</h2>", table_html(["字段", "特征", "口径", "数据部门"], rows),
                  "<h2>4 算法</h2>", f"<p>Spark MLlib：VectorAssembler → StandardScaler → {e(model.algorithm or '')}"
                  f"（{e(hyper)}），缺失特征计 0；预测概率 ≥ {model.alert_threshold} 预警。</p>"]  # fmt: skip
    parts += ["<h2>5 检验方法</h2>",
              f"<p>按 <code>{e(model.key)}</code> 与种子 {model.seed} 的哈希留出 {model.test_fraction:.0%} "
              "的数据作检验集（同一主体总在同一侧，与分区无关）"
              + ("，模型只在训练集上拟合" if spec.kind == "mining_model" else "，融合模型不拟合，权重来自本设计")
              + f"：</p><pre>{e(split_expression(model))}</pre>",
              table_html(["指标", "下限"], [[k, v] for k, v in model.floors.items()]),
              table_html(["场景", "条件", "应满足"], [[s.title, s.where, s.expect] for s in model.scenarios]),
              "<h2>6 输出</h2>",
              table_html(["输出", "名称", "字段", "湖中位置"],
                         [[n, o.title, "、".join(o.columns.values()), f"analytics/{spec.name}/{n}/version=<运行>"]
                          for n, o in spec.outputs.items()])]  # fmt: skip
    return page(f"{spec.title} 模型设计文档", "".join(parts), " pre{white-space:pre-wrap}")


def _charts(model: Model, results: Mapping[str, list[dict[str, Any]]]) -> str:
    """ROC curve and score distribution of the held-out rows (inline SVG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from govops.charts import svg_markup

    labels = {r[model.key]: int(r[model.label]) for r in results[model.table]}
    test = [(float(r["score"]), labels[r[model.key]]) for r in results[model.result] if r["split"] == "test"]
    positives, negatives = sum(y for _, y in test), sum(1 - y for _, y in test)
    points, tp, fp = [(0.0, 0.0)], 0, 0
    for score in sorted({s for s, _ in test}, reverse=True):
        tp += sum(y for s, y in test if s == score)
        fp += sum(1 - y for s, y in test if s == score)
        points.append((fp / max(negatives, 1), tp / max(positives, 1)))
    fig, (roc, dist) = plt.subplots(1, 2, figsize=(10, 4))
    roc.plot([x for x, _ in points], [y for _, y in points], marker=".")
    roc.plot([0, 1], [0, 1], linestyle="--", color="grey")
    roc.set_xlabel("假阳性率")
    roc.set_ylabel("真阳性率")
    roc.set_title("ROC 曲线（留出数据）")
    dist.hist([[s for s, y in test if y == 1], [s for s, y in test if y == 0]], bins=20, label=["标签 1", "标签 0"])
    dist.set_xlabel("分值")
    dist.set_ylabel("主体数")
    dist.set_title("分值分布（留出数据）")
    dist.legend()
    return f"<figure class=chart>{svg_markup(fig)}</figure>"


def test_report(spec: AnalyticsSpec, manifest: Mapping[str, Any], results: Mapping[str, list[dict[str, Any]]],
                run_id: str) -> str:  # fmt: skip
    """The model test report, from the run's evaluation output and manifest."""
    model = _model(spec)
    evaluation = results[model.evaluation]
    parts = [_header(spec, "模型测试报告"),
             f"<p>运行 <code>{e(run_id)}</code> · Spark 应用 <code>{e(str(manifest.get('app_id')))}</code>"
             f" · {e(str(manifest['started_at']))} 至 {e(str(manifest['finished_at']))}</p>",
             "<h2>测试数据</h2>",
             table_html(["数据集", "数据领域", "行数", "版本"],
                        [[i["dataset"], i["domain"], i["rows"], str((i.get("version") or {}).get("run", ""))]
                         for i in manifest["inputs"]])]  # fmt: skip
    verdicts = {True: "通过", False: "未通过", None: ""}
    for section, title in SECTIONS.items():
        rows = [r for r in evaluation if r["section"] == section]
        if not rows:
            continue
        parts.append(f"<h2>{e(title)}</h2>")
        shown = [[r["item"], r["value"], r["text"], r["floor"], verdicts[r["passed"]]] for r in rows]
        parts.append(table_html(["项目", "数值", "说明", "下限", "结论"], shown))
        if section == "confusion":
            parts.append(_charts(model, results))
    return page(f"{spec.title} 模型测试报告", "".join(parts))


def write_model_documents(lake_root: str, spec: AnalyticsSpec, manifest: Mapping[str, Any], *,
                          run_id: str) -> dict[str, str]:  # fmt: skip
    """Write the design document, the test report and the result as CSV; their URIs by file name."""
    from govops.analytics.runs import read_outputs

    model = _model(spec)
    results = read_outputs(manifest)

    def write(local: Path) -> list[str]:
        (local / "design.html").write_text(design_document(spec), encoding="utf-8")
        (local / "test_report.html").write_text(test_report(spec, manifest, results, run_id), encoding="utf-8")
        write_csv(local / f"{model.result}.csv", spec.outputs[model.result], results[model.result])
        return ["design.html", "test_report.html", f"{model.result}.csv"]

    return publish(lake_root, spec, run_id, write)
