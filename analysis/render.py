"""Reports for people: the Markdown rendering of a :class:`~analysis.report.Report` (zh or en)."""

from __future__ import annotations

import math

from analysis.quality import verdict
from analysis.report import Report
from experiments.catalog import BUILTIN_METRICS, RATIO_METRICS
from experiments.models import MetricKind

LABELS = {
    "zh": {
        "title": "显著性报告", "hypothesis": "假设", "control": "无触达对照组", "primary": "主要指标",
        "variants": "分组", "variant": "分组", "n": "样本量", "designed": "设计占比", "observed": "实际占比",
        "srm": "样本比例检验 (SRM)", "srm_ok": "分组比例与设计一致", "srm_bad": "⚠️ 分组比例与设计不符：结果不可用于决策",
        "metric": "指标", "natural": "对照组均值（自然回流率）", "mean": "实验组均值", "abs": "绝对提升 (95% CI)",
        "rel": "相对提升 (95% CI)", "p": "p 值", "p_adj": "校正后 p 值", "sig": "显著", "yes": "是", "no": "否",
        "method": "检验方法", "correction": "多重比较校正", "roi": "成本与 ROI", "contacted": "触达人数",
        "inc_returns": "增量回流人数", "inc_revenue": "增量收入", "cost": "成本", "cpir": "每个增量回流客户成本",
        "generated": "生成时间", "bayesian": "贝叶斯视角", "p_beat": "胜过对照组的概率", "loss": "预期损失",
        "credible": "95% 可信区间", "cuped": "协变量调整（CUPED）", "covariates": "协变量", "adj_uplift": "调整后提升 (95% CI)",
        "var_red": "方差减少", "sequential": "持续监测（随时有效的置信区间）", "may_act": "可行动",
        "always_valid": "随时有效 95% 区间", "p_av": "随时有效 p 值", "segments": "分群效果（主要指标）", "segment": "分群",
        "guardrails": "护栏指标（单侧检验）", "margin": "容忍上限", "breached": "越界", "upper": "单侧上界",
        "unsubscribed": "退订率", "complained": "投诉率", "quality": "回流质量：券带回的是一次访问，还是一个客户？",
        "quality_note": "回流客户在回流后 1-7 天、1-30 天内再次活跃的比例、30 天内复购次数与消费，对比对照组自然回流的客户；只计入观察期已满的客户。",
        "returned": "回流人数", "measure": "指标", "natural_returners": "自然回流客户", "variant_returners": "本组回流客户",
        "verdict": "结论", "customer": "留住了客户", "one_visit": "只换来一次访问", "too_early": "观察期未满",
        "retained_7d": "7 天留存", "retained_30d": "30 天留存", "repeat_orders_30d": "30 天复购次数", "spend_30d": "30 天消费",
    },
    "en": {
        "title": "Significance report", "hypothesis": "Hypothesis", "control": "No-contact control",
        "primary": "Primary metric", "variants": "Variants", "variant": "Variant", "n": "n",
        "designed": "Designed share", "observed": "Observed share", "srm": "Sample ratio mismatch (SRM)",
        "srm_ok": "The observed split matches the design",
        "srm_bad": "⚠️ The observed split does not match the design: do not act on these results",
        "metric": "Metric", "natural": "Control mean (natural rate)", "mean": "Variant mean",
        "abs": "Abs. uplift (95% CI)", "rel": "Rel. uplift (95% CI)", "p": "p-value", "p_adj": "Adj. p-value",
        "sig": "Significant", "yes": "yes", "no": "no", "method": "Method", "correction": "Multiple-testing correction",
        "roi": "Cost and ROI", "contacted": "Contacted", "inc_returns": "Incremental returns",
        "inc_revenue": "Incremental revenue", "cost": "Cost", "cpir": "Cost per incremental return",
        "generated": "Generated", "bayesian": "Bayesian view", "p_beat": "Chance to beat control",
        "loss": "Expected loss", "credible": "95% credible interval", "cuped": "Covariate adjustment (CUPED)",
        "covariates": "Covariates", "adj_uplift": "Adjusted uplift (95% CI)", "var_red": "Variance reduction",
        "sequential": "Sequential monitoring (always-valid intervals)",
        "may_act": "May act", "always_valid": "Always-valid 95% interval", "p_av": "Always-valid p", "segments": "Segments (primary metric)", "segment": "Segment",
        "guardrails": "Guardrails (one-sided)", "margin": "Tolerated increase", "breached": "Breached",
        "upper": "Upper bound", "unsubscribed": "Unsubscribe rate", "complained": "Complaint rate", "quality": "Recall quality: did the coupon buy one visit or a customer?",
        "quality_note": "Returned customers active again 1-7 and 1-30 days after their return, and their orders and spend in "
                        "those 30 days, against the control's customers who returned by themselves; only customers whose "
                        "follow-up has passed count.",
        "returned": "Returned", "measure": "Measure", "natural_returners": "Natural returners",
        "variant_returners": "Variant's returners", "verdict": "Verdict", "customer": "kept a customer",
        "one_visit": "bought one visit", "too_early": "too early to tell", "retained_7d": "7-day retention",
        "retained_30d": "30-day retention", "repeat_orders_30d": "Repeat orders (30 d)", "spend_30d": "Spend (30 d)",
    },
}


def fmt_p(p: float) -> str:
    if not math.isfinite(p):
        return "–"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def fmt_value(x: float, kind: str, *, signed: bool = False) -> str:
    if not math.isfinite(x):
        return "∞" if x > 0 else ("-∞" if x < 0 else "–")
    sign = "+" if signed else ""
    if kind == MetricKind.BINARY.value:
        return f"{x * 100:{sign}.2f}%"
    return f"{x:{sign},.2f}"


def fmt_ci(ci: tuple[float, float], kind: str) -> str:
    return f"[{fmt_value(ci[0], kind, signed=True)}, {fmt_value(ci[1], kind, signed=True)}]"


def fmt_money(x: float | None, currency: str = "¥") -> str:
    if x is None or not math.isfinite(x):
        return "–"
    return f"-{currency}{-x:,.2f}" if x < 0 else f"{currency}{x:,.2f}"


def metric_label(name: str, lang: str) -> str:
    builtin = BUILTIN_METRICS.get(name) or RATIO_METRICS.get(name)
    if builtin is None:
        return name
    return f"{builtin.label_zh if lang == 'zh' else builtin.label_en} ({name})"


def render_markdown(report: Report, lang: str = "zh", currency: str = "¥") -> str:
    """The report as Markdown: design and SRM, one table per metric, then cost and ROI."""
    L = LABELS[lang]
    out = [f"# {L['title']}: {report.experiment}", ""]
    if report.hypothesis:
        out += [f"**{L['hypothesis']}**: {report.hypothesis}", ""]
    out += [
        f"- {L['control']}: `{report.control}`",
        f"- {L['primary']}: {metric_label(report.primary_metric, lang)}",
        f"- {L['correction']}: {report.correction}, α = {report.alpha}",
        f"- {L['generated']}: {report.generated_at}",
        "",
        f"## {L['variants']}",
        "",
        f"| {L['variant']} | {L['n']} | {L['designed']} | {L['observed']} |",
        "|---|---:|---:|---:|",
    ]
    for v in report.variants:
        name = f"{v.name} ({L['control']})" if v.is_control else v.name
        out.append(f"| {name} | {v.n:,} | {v.designed_share:.2%} | {v.observed_share:.2%} |")
    srm = report.srm
    verdict = L["srm_bad"] if srm.mismatch else L["srm_ok"]
    verdict += f" ({srm.reason})" if srm.reason else ""
    out += ["", f"## {L['srm']}", "", f"χ² = {srm.chi2:.4f}, p = {fmt_p(srm.p_value)}: {verdict}", ""]

    metrics = list(dict.fromkeys(c.metric for c in report.comparisons))
    for metric in metrics:
        rows = [c for c in report.comparisons if c.metric == metric]
        out += [
            f"## {L['metric']}: {metric_label(metric, lang)}",
            "",
            f"| {L['variant']} | {L['n']} | {L['natural']} | {L['mean']} | {L['abs']} | {L['rel']} "
            f"| {L['p']} | {L['p_adj']} | {L['sig']} |",
            "|---|---:|---:|---:|---|---|---:|---:|:---:|",
        ]
        for c in rows:
            out.append(
                f"| {c.variant} | {c.n:,} | {fmt_value(c.control_mean, c.kind)} | {fmt_value(c.variant_mean, c.kind)} "
                f"| {fmt_value(c.abs_uplift, c.kind, signed=True)} {fmt_ci(c.abs_ci, c.kind)} "
                f"| {fmt_value(c.rel_uplift, 'binary', signed=True)} {fmt_ci(c.rel_ci, 'binary')} "
                f"| {fmt_p(c.p_value)} | {fmt_p(c.p_value_adjusted)} | {L['yes'] if c.significant else L['no']} |"
            )
        out += ["", f"{L['method']}: {rows[0].method}", ""]

    if report.roi:
        out += [
            f"## {L['roi']}",
            "",
            f"| {L['variant']} | {L['contacted']} | {L['inc_returns']} | {L['inc_revenue']} | {L['cost']} | ROI "
            f"| {L['cpir']} |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for r in report.roi:
            roi = "–" if r.roi is None else f"{r.roi:.2f}×"
            out.append(
                f"| {r.variant} | {r.contacted:,} | {r.incremental_returns:,.1f} | {fmt_money(r.incremental_revenue, currency)} "
                f"| {fmt_money(r.cost, currency)} | {roi} | {fmt_money(r.cost_per_incremental_return, currency)} |"
            )
        out.append("")
    if report.cuped:
        out += [f"## {L['cuped']}", "", f"{L['covariates']}: {', '.join(report.cuped[0].covariates)}", "",
                f"| {L['variant']} | {L['metric']} | {L['adj_uplift']} | {L['p']} | {L['var_red']} |",
                "|---|---|---|---:|---:|"]
        for a in report.cuped:
            kind = report.metric_kind(a.metric)
            out.append(f"| {a.variant} | {metric_label(a.metric, lang)} | {fmt_value(a.abs_uplift, kind, signed=True)} "
                       f"{fmt_ci(a.abs_ci, kind)} | {fmt_p(a.p_value)} | {a.variance_reduction:.2%} |")
        out.append("")
    if report.bayesian:
        out += [f"## {L['bayesian']}", "",
                f"| {L['variant']} | {L['metric']} | {L['p_beat']} | {L['loss']} | {L['credible']} |",
                "|---|---|---:|---:|---|"]
        for b in report.bayesian:
            kind = report.metric_kind(b.metric)
            out.append(f"| {b.variant} | {metric_label(b.metric, lang)} | {b.chance_to_beat_control:.1%} "
                       f"| {fmt_value(b.expected_loss, kind)} | {fmt_ci(b.uplift_ci, kind)} |")
        out.append("")
    if report.sequential:
        out += [f"## {L['sequential']}", "",
                f"| {L['variant']} | {L['abs']} | {L['always_valid']} | {L['p_av']} | {L['may_act']} |",
                "|---|---:|---|---:|:---:|"]
        for q in report.sequential:
            kind = report.metric_kind(q.metric)
            out.append(f"| {q.variant} | {fmt_value(q.abs_uplift, kind, signed=True)} | {fmt_ci(q.ci, kind)} "
                       f"| {fmt_p(q.p_value_always_valid)} | {L['yes'] if q.may_act else L['no']} |")
        out.append("")
    if report.guardrails:
        out += _guardrail_section(report, L)
    if report.segments:
        out += _segment_section(report, L)
    if report.quality:
        out += _quality_section(report, L, currency)
    return "\n".join(out)


def _quality_section(report: Report, L: dict[str, str], currency: str) -> list[str]:
    out = [f"## {L['quality']}", "", L["quality_note"], "",
           f"| {L['variant']} | {L['measure']} | {L['returned']} | {L['natural_returners']} | {L['variant_returners']} "
           f"| {L['abs']} | {L['p']} |",
           "|---|---|---:|---:|---:|---|---:|"]
    for q in report.quality:
        out.append(f"| {q.variant} | {L[q.measure]} | {q.returned:,} | {fmt_value(q.control_mean, q.kind)} "
                   f"| {fmt_value(q.variant_mean, q.kind)} | {fmt_value(q.abs_uplift, q.kind, signed=True)} "
                   f"{fmt_ci(q.abs_ci, q.kind)} | {fmt_p(q.p_value)} |")
    out += ["", f"| {L['variant']} | {L['verdict']} |", "|---|---|"]
    for variant in dict.fromkeys(q.variant for q in report.quality):
        out.append(f"| {variant} | {L[verdict(report.quality, variant)]} |")
    out.append("")
    return out


def _guardrail_section(report: Report, L: dict[str, str]) -> list[str]:
    out = [f"## {L['guardrails']}", "",
           f"| {L['variant']} | {L['metric']} | {L['natural']} | {L['mean']} | {L['upper']} | {L['margin']} "
           f"| {L['p']} | {L['breached']} |",
           "|---|---|---:|---:|---:|---:|---:|:---:|"]
    for g in report.guardrails:
        out.append(f"| {g.variant} | {L[g.metric]} | {fmt_value(g.control_rate, 'binary')} "
                   f"| {fmt_value(g.variant_rate, 'binary')} | {fmt_value(g.upper_bound, 'binary', signed=True)} "
                   f"| {fmt_value(g.margin, 'binary', signed=True)} | {fmt_p(g.p_value)} "
                   f"| {'⚠️ ' + L['yes'] if g.breached else L['no']} |")
    return out + [""]


def _segment_section(report: Report, L: dict[str, str]) -> list[str]:
    out = [f"## {L['segments']}", "",
           f"| {L['segment']} | {L['variant']} | {L['n']} | {L['natural']} | {L['mean']} | {L['abs']} "
           f"| {L['p_adj']} | {L['sig']} |",
           "|---|---|---:|---:|---:|---|---:|:---:|"]
    for c in report.segments:
        out.append(f"| {c.segment} | {c.variant} | {c.n:,} | {fmt_value(c.control_mean, c.kind)} "
                   f"| {fmt_value(c.variant_mean, c.kind)} | {fmt_value(c.abs_uplift, c.kind, signed=True)} "
                   f"{fmt_ci(c.abs_ci, c.kind)} | {fmt_p(c.p_value_adjusted)} | {L['yes'] if c.significant else L['no']} |")
    return out + [""]
