"""Reports for people: the Markdown rendering of a :class:`~analysis.report.Report` (zh or en)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from analysis.quality import verdict
from analysis.report import Report
from analysis.targeting_gain import TargetingGain
from analysis.verdict import Reason, Verdict, factorial_reasons
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
        "unproven": "尚无定论（区间包含 0）", "no_data": "暂无数据", "no_customers": "暂无数据：尚未分配任何客户",
        "adj_ci": "校正后区间（与校正后 p 同族水平）", "roi_ci": "ROI 区间", "roi_status": "ROI 判断",
        "roi_positive": "高于盈亏平衡", "roi_negative": "低于盈亏平衡（亏钱）", "roi_unproven": "未经证实（区间包含盈亏平衡点）",
        "verdict_title": "结论", "previous_rollout": "上一次全量上线",
        "previous_rollout_text": "本实验在 `{variant}`（来自 {experiment}，{at} UTC 全量上线）之上运行：各分组应与它比较；无触达对照组仍衡量自然回流率。",
        "guardrail_blocked": "越过护栏，不可行动",
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
        "unproven": "unproven (the interval includes 0)", "no_data": "No data yet",
        "no_customers": "No data yet: no customer has been assigned",
        "adj_ci": "Adj. interval (family level of the adj. p)", "roi_ci": "ROI interval", "roi_status": "ROI reading",
        "roi_positive": "above break-even", "roi_negative": "below break-even (loses money)",
        "roi_unproven": "unproven (the interval includes break-even)",
        "verdict_title": "Verdict", "previous_rollout": "Last roll-out",
        "previous_rollout_text": "This experiment runs on top of `{variant}` (from {experiment}, rolled out {at} UTC): "
                                 "compare the variants with it; the no-contact control still measures the natural rate.",
        "guardrail_blocked": "breaches a guardrail: do not act",
    },
}


DASH = "–"


@dataclass(frozen=True)
class Cell:
    """A value as shown: its text, and when it is missing ("–") the reason why (for a tooltip or note)."""

    text: str
    reason: str | None = None


def finite(x: float | None) -> bool:
    """A number that can be shown (None, nan and ±inf cannot)."""
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def cell(x: float | None, fmt: Callable[[float], str], reason: str) -> Cell:
    """``fmt(x)``, or "–" with ``reason`` when ``x`` is missing or not finite."""
    return Cell(fmt(x), None) if finite(x) else Cell(DASH, reason)


def show(x: float | None, fmt: Callable[[float], str]) -> str:
    """``fmt(x)``, or "–": never "nan" or "inf" on a page or in a report."""
    return fmt(x) if finite(x) else DASH


def fmt_p(p: float | None) -> str:
    if not finite(p):
        return DASH
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def fmt_value(x: float | None, kind: str, *, signed: bool = False) -> str:
    if x is None or math.isnan(x):
        return DASH
    if not math.isfinite(x):
        return "∞" if x > 0 else "-∞"  # an unbounded interval end (Fieller), not missing data
    sign = "+" if signed else ""
    if kind == MetricKind.BINARY.value:
        return f"{x * 100:{sign}.2f}%"
    return f"{x:{sign},.2f}"


def fmt_ci(ci: tuple[float, float] | None, kind: str) -> str:
    if ci is None or not any(x is not None and not math.isnan(x) for x in ci):
        return ""
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


DECISIONS = {
    "zh": {"ship": "上线 {variant}", "keep_running": "继续运行", "stop_for_harm": "因伤害停止：{variant}",
           "no_effect": "没有效果", "not_analysable": "无法分析"},
    "en": {"ship": "Ship {variant}", "keep_running": "Keep running", "stop_for_harm": "Stop for harm: {variant}",
           "no_effect": "No effect", "not_analysable": "Not analysable"},
}
# A verdict reason's words: placeholders are filled from Reason.values (numbers already formatted).
REASONS = {
    "zh": {
        "no_customers": "暂无数据：尚未分配任何客户",
        "no_outcomes": "暂无数据：还没有可比较的结果",
        "srm_mismatch": "分组比例与设计不符（SRM p = {p}）：任何结果都不可用于决策",
        "srm_ok": "分组比例与设计一致（SRM p = {p}）",
        "significant": "{variant} 在{metric}上显著优于对照组：{uplift} {ci}，校正后 p = {p_adjusted}",
        "significantly_worse": "{variant} 在{metric}上显著差于对照组：{uplift} {ci}，校正后 p = {p_adjusted}",
        "not_significant": "校正后没有分组显著优于对照组；点估计最高的 {variant}：{uplift} {ci}，校正后 p = {p_adjusted}（未经证实）",
        "guardrail_breached": "{variant} 越过护栏「{metric}」：比对照组高 {difference}（单侧上界 {upper}，容忍 {margin}）",
        "guardrails_ok": "{variant} 没有越过护栏（{metrics}）",
        "sequential_crossed": "{variant} 已越过持续监测的边界（随时有效区间不含 0）",
        "sequential_not_crossed": "{variant} 尚未越过持续监测的边界：提前决策会抬高误报率",
        "roi_positive": "{variant} 的 ROI {roi}，区间 {ci} 高于盈亏平衡",
        "roi_unproven": "{variant} 的 ROI {roi} 未经证实：区间 {ci} 包含盈亏平衡点 0",
        "roi_negative": "{variant} 亏钱：ROI 区间 {ci} 低于盈亏平衡",
        "roi_unknown": "{variant} 的 ROI 暂无数据",
        "quality_customer": "{variant} 带回的客户 30 天留存高于自然回流客户：{uplift} {ci}",
        "quality_one_visit": "{variant} 带回的多是一次访问：30 天留存低于自然回流客户 {uplift} {ci}",
        "quality_unproven": "{variant} 的回流质量尚无定论：30 天留存 {uplift} {ci} 包含 0",
        "quality_too_early": "{variant} 的回流质量：观察期未满",
        "window_open": "最后一批客户的归因窗口还剩 {days} 天",
        "underpowered": "以 80% 把握度检测 {mde} 的提升，还需要 {customers} 名客户",
        "powered": "样本量足以检测 {mde} 的提升，但没有发现效果",
        "factorial_cell_rate_clear": "回流率最高的组合：**{variant}**，比自然回流率高 {value} {value_ci}{value_reading}，领先第二名 {runner_up} {lead} {lead_ci}（校正后区间不含 0）",
        "factorial_cell_rate_leading": "回流率最高的组合是 **{variant}**（比自然回流率高 {value} {value_ci}{value_reading}），但领先第二名 {runner_up} 仅 {lead} {lead_ci}，校正后区间包含 0：未经证实，尚无明确赢家",
        "factorial_cell_roi_clear": "ROI 最高的组合：**{variant}**，ROI {value} {value_ci}{value_reading}，领先 {runner_up} {lead} {lead_ci}（校正后区间不含 0）",
        "factorial_cell_roi_leading": "ROI 最高的组合是 **{variant}**（ROI {value} {value_ci}{value_reading}），但领先 {runner_up} 仅 {lead} {lead_ci}，区间包含 0：未经证实，尚无明确赢家",
        "factorial_level_rate_clear": "{factor}：**{level}** 的回流率比 {runner_up} 高 {lead} {lead_ci}（校正后区间不含 0），无论其他因子取何水平",
        "factorial_level_rate_leading": "{factor}：{level} 领先 {runner_up} {lead} {lead_ci}，校正后区间包含 0：未经证实，尚不能判定哪个水平更好",
        "factorial_level_roi_clear": "{factor}（按 ROI）：**{level}**，ROI {value} {value_ci}{value_reading}，比 {runner_up} 高 {lead} {lead_ci}（校正后区间不含 0）",
        "factorial_level_roi_leading": "{factor}（按 ROI）：{level}（ROI {value} {value_ci}{value_reading}）领先 {runner_up} {lead} {lead_ci}，区间包含 0：未经证实",
        "factorial_depends": "{factor}：最佳水平取决于 {others}（交互作用不可忽略），请按组合选择",
        "factorial_cell_guardrail": "但 {variant} 越过护栏「{metric}」：不能按原样上线，请选择未越过护栏的组合",
    },
    "en": {
        "no_customers": "No data yet: no customer has been assigned",
        "no_outcomes": "No data yet: no outcome to compare",
        "srm_mismatch": "The split does not match the design (SRM p = {p}): no result can be acted on",
        "srm_ok": "The split matches the design (SRM p = {p})",
        "significant": "{variant} beats the control on {metric}: {uplift} {ci}, adjusted p = {p_adjusted}",
        "significantly_worse": "{variant} is worse than the control on {metric}: {uplift} {ci}, adjusted p = {p_adjusted}",
        "not_significant": "No variant beats the control after correction; highest point estimate {variant}: "
                           "{uplift} {ci}, adjusted p = {p_adjusted} (unproven)",
        "guardrail_breached": "{variant} breaches the {metric} guardrail: {difference} above the control "
                              "(one-sided upper bound {upper}, tolerated {margin})",
        "guardrails_ok": "{variant} breaches no guardrail ({metrics})",
        "sequential_crossed": "{variant} has crossed the sequential boundary (the always-valid interval excludes 0)",
        "sequential_not_crossed": "{variant} has not crossed the sequential boundary yet: deciding now would "
                                  "inflate the false-positive rate",
        "roi_positive": "{variant}'s ROI {roi}, interval {ci} above break-even",
        "roi_unproven": "{variant}'s ROI {roi} is unproven: its interval {ci} includes break-even (0)",
        "roi_negative": "{variant} loses money: ROI interval {ci} below break-even",
        "roi_unknown": "{variant}'s ROI: no data yet",
        "quality_customer": "{variant}'s returners stay better than natural returners: 30-day retention {uplift} {ci}",
        "quality_one_visit": "{variant} mostly bought one visit: 30-day retention {uplift} {ci} below natural returners",
        "quality_unproven": "{variant}'s recall quality is unproven: 30-day retention {uplift} {ci} includes 0",
        "quality_too_early": "{variant}'s recall quality: too early to tell",
        "window_open": "the last customers' attribution window has {days} days left",
        "underpowered": "{customers} more customers are needed to detect a {mde} uplift with 80% power",
        "powered": "enough customers to detect a {mde} uplift, and none was found",
        "factorial_cell_rate_clear": "Best cell by return rate: **{variant}**, {value} over the natural rate {value_ci}"
                                     "{value_reading}, ahead of the runner-up {runner_up} by {lead} {lead_ci} "
                                     "(adjusted interval above 0)",
        "factorial_cell_rate_leading": "**{variant}** has the highest return rate ({value} over the natural rate "
                                       "{value_ci}{value_reading}) but leads the runner-up {runner_up} by only {lead} "
                                       "{lead_ci}; the adjusted interval includes 0: unproven, no clear winner yet",
        "factorial_cell_roi_clear": "Best cell by ROI: **{variant}**, ROI {value} {value_ci}{value_reading}, ahead of "
                                    "{runner_up} by {lead} {lead_ci} (adjusted interval above 0)",
        "factorial_cell_roi_leading": "**{variant}** has the highest ROI ({value} {value_ci}{value_reading}) but leads "
                                      "{runner_up} by only {lead} {lead_ci}; the interval includes 0: unproven, no "
                                      "clear winner yet",
        "factorial_level_rate_clear": "{factor}: **{level}** returns {lead} more than {runner_up} {lead_ci} (adjusted "
                                      "interval above 0), whatever the other factors",
        "factorial_level_rate_leading": "{factor}: {level} leads {runner_up} by {lead} {lead_ci}; the adjusted interval "
                                        "includes 0: unproven, no level is clearly better yet",
        "factorial_level_roi_clear": "{factor} by ROI: **{level}**, ROI {value} {value_ci}{value_reading}, above "
                                     "{runner_up} by {lead} {lead_ci} (adjusted interval above 0)",
        "factorial_level_roi_leading": "{factor} by ROI: {level} (ROI {value} {value_ci}{value_reading}) leads "
                                       "{runner_up} by {lead} {lead_ci}; the interval includes 0: unproven",
        "factorial_depends": "{factor}: the best level depends on {others} (interactions not negligible): choose by cell",
        "factorial_cell_guardrail": "but {variant} breaches the {metric} guardrail: not to ship as it is; choose a "
                                    "cell that breaches none",
    },
}
# How an uplift over the holdout (rate) or an ROI reads against 0 / break-even, after its interval.
READINGS = {
    "zh": {"rate_above": "", "rate_unproven": "，未经证实（区间包含 0）", "rate_below": "，低于自然回流率",
           "roi_above": "，高于盈亏平衡", "roi_unproven": "，未经证实（区间包含盈亏平衡点）", "roi_below": "，低于盈亏平衡：亏钱"},
    "en": {"rate_above": "", "rate_unproven": ", unproven (the interval includes 0)",
           "rate_below": ", below the natural rate", "roi_above": ", above break-even",
           "roi_unproven": ", unproven (the interval includes break-even)", "roi_below": ", below break-even: loses money"},
}


def _ratio(x: float) -> str:
    return f"{x:.2f}×"


def reason_text(reason: Reason, lang: str = "zh", currency: str = "¥") -> str:
    """One reason of a verdict in words, its numbers formatted ("–" when missing)."""
    if reason.code.startswith("factorial_"):
        return _factorial_reason_text(reason, lang, currency)
    v = reason.values
    kind = v.get("kind") or "binary"  # uplifts without a kind are rates (retention)
    fields: dict[str, str] = {"variant": reason.variant or ""}
    if "metric" in v:
        guardrail = LABELS[lang].get(str(v["metric"])) if reason.code == "guardrail_breached" else None
        fields["metric"] = guardrail or metric_label(str(v["metric"]), lang)
    if "uplift" in v:
        fields["uplift"] = _difference(v["uplift"], kind, lang)
    if "lo" in v:
        fields["ci"] = (f"[{show(v['lo'], _ratio)}, {show(v['hi'], _ratio)}]" if reason.code.startswith("roi_")
                        else _difference_ci(v["lo"], v["hi"], kind))
    for name in ("p", "p_adjusted"):
        if name in v:
            fields[name] = fmt_p(v[name])
    for name in ("difference", "upper", "margin", "mde"):
        if name in v:
            fields[name] = _difference(v[name], "binary", lang)
    if "roi" in v:
        fields["roi"] = show(v["roi"], _ratio)
    for name in ("customers", "days"):
        if name in v:
            fields[name] = show(v[name], lambda x: f"{x:,.0f}")
    if "metrics" in v:
        fields["metrics"] = ", ".join(LABELS[lang].get(m.strip(), m.strip()) for m in str(v["metrics"]).split(","))
    return REASONS[lang][reason.code].format(**fields)


def _factorial_reason_text(reason: Reason, lang: str, currency: str) -> str:
    """A factorial pick (analysis.verdict.factorial_reasons): rates in percentage points, ROI in ×."""
    v = reason.values
    factor = str(v.get("factor") or "")
    roi = "_roi_" in reason.code
    kind = v.get("kind") or "binary"
    if roi:
        signed = lambda x: f"{x:+.2f}×"  # noqa: E731
        lead, lead_ci = show(v.get("lead"), signed), _ratio_ci(v.get("lead_lo"), v.get("lead_hi"), signed)
        value, value_ci = show(v.get("value"), _ratio), _ratio_ci(v.get("value_lo"), v.get("value_hi"))
    else:
        lead, lead_ci = _difference(v.get("lead"), kind, lang), _difference_ci(v.get("lead_lo"), v.get("lead_hi"), kind)
        value = _difference(v.get("value"), kind, lang)
        value_ci = _difference_ci(v.get("value_lo"), v.get("value_hi"), kind)
    lo, hi = v.get("value_lo"), v.get("value_hi")
    reading = ("" if not (finite(lo) and finite(hi)) else
               READINGS[lang][f"{'roi' if roi else 'rate'}_{'above' if lo > 0 else 'below' if hi < 0 else 'unproven'}"])
    name = lambda x: level_label(factor, str(x), currency) if factor and x else (x or DASH)  # noqa: E731
    metric = str(v.get("metric") or "")
    guardrail = (LABELS[lang].get(metric) or metric_label(metric, lang)) if metric else DASH
    return REASONS[lang][reason.code].format(
        metric=guardrail,
        variant=reason.variant or DASH, factor=factor or DASH, level=name(v.get("level")),
        runner_up=name(v.get("runner_up")), lead=lead, lead_ci=lead_ci, value=value, value_ci=value_ci,
        value_reading=reading, others=v.get("others") or DASH)


def _ratio_ci(lo: float | None, hi: float | None, fmt: Callable[[float], str] = _ratio) -> str:
    return f"[{show(lo, fmt)}, {show(hi, fmt)}]" if finite(lo) or finite(hi) else DASH


POINTS = {"zh": "个百分点", "en": "pt"}


def fmt_difference(x: float | None, kind: str, lang: str = "zh") -> str:
    """A difference of rates in percentage points (pt, 个百分点), of amounts as they are."""
    return _difference(x, kind, lang)


def fmt_difference_ci(ci: tuple[float, float] | None, kind: str) -> str:
    """Its interval, the unit given once by the estimate before it: [+0.12, +1.34]."""
    return "" if ci is None else _difference_ci(ci[0], ci[1], kind)


def _difference(x: float | None, kind: str, lang: str) -> str:
    """A difference of two rates is in percentage points ("+1.23 pt", "+1.23 个百分点"), never "%"."""
    if kind != "binary":
        return fmt_value(_nan(x), kind, signed=True)
    return show(x, lambda d: f"{d * 100:+.2f} {POINTS[lang]}")


def _difference_ci(lo: float | None, hi: float | None, kind: str) -> str:
    if kind != "binary":
        return fmt_ci((_nan(lo), _nan(hi)), kind) or DASH
    if not (finite(lo) or finite(hi)):
        return DASH
    return f"[{show(lo, lambda d: f'{d * 100:+.2f}')}, {show(hi, lambda d: f'{d * 100:+.2f}')}]"  # after its uplift's unit


def _beside(ci: tuple[float, float] | None, kind: str) -> str:
    """A table cell's interval after its estimate: :func:`fmt_difference_ci`, or nothing when missing."""
    present = ci is not None and any(x is not None and not math.isnan(x) for x in ci)
    return fmt_difference_ci(ci, kind) if present else ""


def _alone(ci: tuple[float, float] | None, kind: str, lang: str) -> str:
    """An interval in a column of its own: with its unit (points), or nothing when missing."""
    text = _beside(ci, kind)
    return f"{text} {POINTS[lang]}" if text and kind == MetricKind.BINARY.value else text


def _nan(x: float | None) -> float:
    return math.nan if x is None else float(x)


def decision_text(verdict: Verdict, lang: str = "zh") -> str:
    """The verdict's headline, e.g. "Ship c10_lively_20h" or "Keep running: 1,234 more customers, 5 days"."""
    text = DECISIONS[lang][verdict.decision].format(variant=verdict.variant or "")
    more = []
    if verdict.decision == "keep_running" and verdict.customers_needed:
        more.append(f"还需 {verdict.customers_needed:,} 名客户" if lang == "zh"
                    else f"{verdict.customers_needed:,} more customers")
    if verdict.decision == "keep_running" and verdict.days_needed:
        more.append(f"约 {verdict.days_needed} 天" if lang == "zh" else f"about {verdict.days_needed} days")
    return text + (("：" if lang == "zh" else ": ") + ("，" if lang == "zh" else ", ").join(more) if more else "")


def _verdict_section(report: Report, L: dict[str, str], lang: str) -> list[str]:
    out = []
    if report.verdict is not None:
        out += [f"## {L['verdict_title']}: {decision_text(report.verdict, lang)}", ""]
        out += [f"- {reason_text(r, lang)}" for r in report.verdict.reasons] + [""]
    if report.previous_rollout is not None:
        r = report.previous_rollout
        out += [f"**{L['previous_rollout']}**: " + L["previous_rollout_text"].format(
            variant=r.variant or "", experiment=r.experiment, at=r.rolled_out_at), ""]
    return out


def _pct(x: float) -> str:
    return f"{x:.2%}"


def render_markdown(report: Report, lang: str = "zh", currency: str = "¥") -> str:
    """The report as Markdown: design and SRM, one table per metric, then cost and ROI."""
    L = LABELS[lang]
    out = [f"# {L['title']}: {report.experiment}", ""]
    if report.hypothesis:
        out += [f"**{L['hypothesis']}**: {report.hypothesis}", ""]
    out += _verdict_section(report, L, lang)
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
        out.append(f"| {name} | {v.n:,} | {v.designed_share:.2%} | {show(v.observed_share, _pct)} |")
    srm = report.srm
    out += ["", f"## {L['srm']}", ""]
    if finite(srm.p_value):
        reading = L["srm_bad"] if srm.mismatch else L["srm_ok"]
        reading += f" ({srm.reason})" if srm.reason else ""
        out += [f"χ² = {srm.chi2:.4f}, p = {fmt_p(srm.p_value)}: {reading}", ""]
    else:
        out += [L["no_customers"] if sum(srm.observed) == 0 else L["no_data"], ""]

    metrics = list(dict.fromkeys(c.metric for c in report.comparisons))
    for metric in metrics:
        rows = [c for c in report.comparisons if c.metric == metric]
        out += [f"## {L['metric']}: {metric_label(metric, lang)}", ""]
        if not any(c.n and c.control_n for c in rows):
            out += [L["no_data"], ""]
            continue
        out += [
            f"| {L['variant']} | {L['n']} | {L['natural']} | {L['mean']} | {L['abs']} | {L['rel']} "
            f"| {L['p']} | {L['p_adj']} | {L['adj_ci']} | {L['sig']} |",
            "|---|---:|---:|---:|---|---|---:|---:|---|:---:|",
        ]
        for c in rows:
            out.append(
                f"| {c.variant} | {c.n:,} | {fmt_value(c.control_mean, c.kind)} | {fmt_value(c.variant_mean, c.kind)} "
                f"| {fmt_difference(c.abs_uplift, c.kind, lang)} {_beside(c.abs_ci, c.kind)} "
                f"| {fmt_value(c.rel_uplift, 'binary', signed=True)} {fmt_ci(c.rel_ci, 'binary')} "
                f"| {fmt_p(c.p_value)} | {fmt_p(c.p_value_adjusted)} | {_alone(c.abs_ci_adjusted, c.kind, lang) or DASH} "
                f"| {L['yes'] if c.significant else L['no']} |"
            )
        out += ["", f"{L['method']}: {rows[0].method}", ""]

    if report.roi:
        out += [
            f"## {L['roi']}",
            "",
            f"| {L['variant']} | {L['contacted']} | {L['inc_returns']} | {L['inc_revenue']} | {L['cost']} | ROI "
            f"| {L['roi_ci']} | {L['roi_status']} | {L['cpir']} |",
            "|---|---:|---:|---:|---:|---:|---|---|---:|",
        ]
        for r in report.roi:
            lo, hi = r.roi_ci if r.roi_ci is not None else (None, None)
            status = (DASH if not (finite(lo) and finite(hi)) else
                      L["roi_positive"] if lo > 0 else L["roi_negative"] if hi < 0 else L["roi_unproven"])
            out.append(
                f"| {r.variant} | {r.contacted:,} | {show(r.incremental_returns, lambda x: f'{x:,.1f}')} "
                f"| {fmt_money(r.incremental_revenue, currency)} | {fmt_money(r.cost, currency)} | {show(r.roi, _ratio)} "
                f"| {'[' + show(lo, _ratio) + ', ' + show(hi, _ratio) + ']' if r.roi_ci else DASH} | {status} "
                f"| {fmt_money(r.cost_per_incremental_return, currency)} |"
            )
        out.append("")
    if report.cuped:
        out += [f"## {L['cuped']}", "", f"{L['covariates']}: {', '.join(report.cuped[0].covariates)}", "",
                f"| {L['variant']} | {L['metric']} | {L['adj_uplift']} | {L['p']} | {L['var_red']} |",
                "|---|---|---|---:|---:|"]
        for a in report.cuped:
            kind = report.metric_kind(a.metric)
            out.append(f"| {a.variant} | {metric_label(a.metric, lang)} | {fmt_difference(a.abs_uplift, kind, lang)} "
                       f"{_beside(a.abs_ci, kind)} | {fmt_p(a.p_value)} | {show(a.variance_reduction, _pct)} |")
        out.append("")
    if report.bayesian:
        out += [f"## {L['bayesian']}", "",
                f"| {L['variant']} | {L['metric']} | {L['p_beat']} | {L['loss']} | {L['credible']} |",
                "|---|---|---:|---:|---|"]
        for b in report.bayesian:
            kind = report.metric_kind(b.metric)
            out.append(f"| {b.variant} | {metric_label(b.metric, lang)} | {show(b.chance_to_beat_control, _pct)} "
                       f"| {fmt_difference(b.expected_loss, kind, lang)} | {_alone(b.uplift_ci, kind, lang)} |")
        out.append("")
    if report.sequential:
        out += [f"## {L['sequential']}", "",
                f"| {L['variant']} | {L['abs']} | {L['always_valid']} | {L['p_av']} | {L['may_act']} |",
                "|---|---:|---|---:|:---:|"]
        for q in report.sequential:
            kind = report.metric_kind(q.metric)
            out.append(f"| {q.variant} | {fmt_difference(q.abs_uplift, kind, lang)} | {_alone(q.ci, kind, lang)} "
                       f"| {fmt_p(q.p_value_always_valid)} "
                       f"| {L['yes'] if q.may_act else L['guardrail_blocked'] if q.guardrail_breached else L['no']} |")
        out.append("")
    if report.guardrails:
        out += _guardrail_section(report, L, lang)
    if report.segments:
        out += _segment_section(report, L, lang)
    if report.quality:
        out += _quality_section(report, L, lang, currency)
    if report.factorial is not None:
        out += factorial_section(report, lang, currency)
    if report.targeting_gain is not None:
        out += targeting_gain_section(report.targeting_gain, lang, currency)
    return "\n".join(out)


GAIN_LABELS = {
    "zh": {"title": "定向本身的增益", "intro": "客户先按哈希分为两组：定向组只触达模型 `{model}` 选中的客户（{cutoff}），"
                   "其中留有对照组；全量组触达所有人，也留有对照组。以下均为每位客户的数值（相对于不触达）。",
           "policy": "策略", "targeted": "定向（{cutoff}）", "everyone": "全量触达", "customers": "客户数",
           "share": "触达比例", "returns": "增量回流/客户", "revenue": "增量收入/客户", "cost": "成本/客户",
           "net": "净收益/客户", "roi": "ROI", "difference": "差值（定向 − 全量）"},
    "en": {"title": "Gain from targeting", "intro": "Customers are first split by hash into two groups: the targeted "
                   "group contacts only the customers model `{model}` selects ({cutoff}), with a holdout inside; the "
                   "contact-everyone group contacts everyone, with its own holdout. Figures are per customer of each "
                   "group, against contacting nobody.",
           "policy": "Policy", "targeted": "Targeted ({cutoff})", "everyone": "Contact everyone", "customers": "Customers",
           "share": "Contacted", "returns": "Incremental returns / customer", "revenue": "Incremental revenue / customer",
           "cost": "Cost / customer", "net": "Net value / customer", "roi": "ROI",
           "difference": "Difference (targeted − everyone)"},
}


def _money_ci(ci: tuple[float, float] | None, currency: str) -> str:
    return "" if ci is None or not all(finite(x) for x in ci) else f"[{fmt_money(ci[0], currency)}, {fmt_money(ci[1], currency)}]"


def targeting_gain_section(gain: TargetingGain, lang: str = "zh", currency: str = "¥") -> list[str]:
    """The targeted policy against contact-everyone, per customer (analysis.targeting_gain)."""
    G = GAIN_LABELS[lang]
    binary = MetricKind.BINARY.value
    out = [f"## {G['title']}", "", G["intro"].format(model=gain.model, cutoff=gain.cutoff), "",
           f"| {G['policy']} | {G['customers']} | {G['share']} | {G['returns']} | {G['revenue']} | {G['cost']} "
           f"| {G['net']} | {G['roi']} |", "|---|---:|---:|---|---|---:|---|---|"]
    for p, label in ((gain.targeted, G["targeted"].format(cutoff=gain.cutoff)), (gain.everyone, G["everyone"])):
        roi = "–" if p.roi is None else _fmt_roi(p.roi)
        if p.roi_ci is not None and all(finite(x) for x in p.roi_ci):
            roi += f" [{_fmt_roi(p.roi_ci[0])}, {_fmt_roi(p.roi_ci[1])}]"
        out.append(f"| {label} | {p.customers:,} | {show(p.contacted_share, _pct)} "
                   f"| {fmt_difference(p.incremental_returns, binary, lang)} {_beside(p.returns_ci, binary)} "
                   f"| {fmt_money(p.incremental_revenue, currency)} {_money_ci(p.revenue_ci, currency)} "
                   f"| {fmt_money(p.cost, currency)} | {fmt_money(p.net_value, currency)} "
                   f"{_money_ci(p.net_value_ci, currency)} | {roi} |")
    out.append(f"| **{G['difference']}** | | | {fmt_difference(gain.returns_difference, binary, lang)} "
               f"{_beside(gain.returns_difference_ci, binary)}, p = {fmt_p(gain.returns_p_value)} | | "
               f"| {fmt_money(gain.net_value_difference, currency)} {_money_ci(gain.net_value_difference_ci, currency)}, "
               f"p = {fmt_p(gain.net_value_p_value)} | |")
    return out + [""]


def _quality_section(report: Report, L: dict[str, str], lang: str, currency: str) -> list[str]:
    out = [f"## {L['quality']}", "", L["quality_note"], "",
           f"| {L['variant']} | {L['measure']} | {L['returned']} | {L['natural_returners']} | {L['variant_returners']} "
           f"| {L['abs']} | {L['p']} |",
           "|---|---|---:|---:|---:|---|---:|"]
    for q in report.quality:
        out.append(f"| {q.variant} | {L[q.measure]} | {q.returned:,} | {fmt_value(q.control_mean, q.kind)} "
                   f"| {fmt_value(q.variant_mean, q.kind)} | {fmt_difference(q.abs_uplift, q.kind, lang)} "
                   f"{_beside(q.abs_ci, q.kind)} | {fmt_p(q.p_value)} |")
    out += ["", f"| {L['variant']} | {L['verdict']} |", "|---|---|"]
    for variant in dict.fromkeys(q.variant for q in report.quality):
        out.append(f"| {variant} | {L[verdict(report.quality, variant)]} |")
    out.append("")
    return out


def _guardrail_section(report: Report, L: dict[str, str], lang: str) -> list[str]:
    out = [f"## {L['guardrails']}", "",
           f"| {L['variant']} | {L['metric']} | {L['natural']} | {L['mean']} | {L['upper']} | {L['margin']} "
           f"| {L['p']} | {L['breached']} |",
           "|---|---|---:|---:|---:|---:|---:|:---:|"]
    for g in report.guardrails:
        out.append(f"| {g.variant} | {L[g.metric]} | {fmt_value(g.control_rate, 'binary')} "
                   f"| {fmt_value(g.variant_rate, 'binary')} | {fmt_difference(g.upper_bound, 'binary', lang)} "
                   f"| {fmt_difference(g.margin, 'binary', lang)} | {fmt_p(g.p_value)} "
                   f"| {'⚠️ ' + L['yes'] if g.breached else L['no']} |")
    return out + [""]


def _segment_section(report: Report, L: dict[str, str], lang: str) -> list[str]:
    out = [f"## {L['segments']}", "",
           f"| {L['segment']} | {L['variant']} | {L['n']} | {L['natural']} | {L['mean']} | {L['abs']} "
           f"| {L['p_adj']} | {L['sig']} |",
           "|---|---|---:|---:|---:|---|---:|:---:|"]
    for c in report.segments:
        out.append(f"| {c.segment} | {c.variant} | {c.n:,} | {fmt_value(c.control_mean, c.kind)} "
                   f"| {fmt_value(c.variant_mean, c.kind)} | {fmt_difference(c.abs_uplift, c.kind, lang)} "
                   f"{_beside(c.abs_ci, c.kind)} | {fmt_p(c.p_value_adjusted)} | {L['yes'] if c.significant else L['no']} |")
    return out + [""]


# Factorial designs (analysis.factorial): main effects, interactions, ROI per level, recommendation.
FACTORIAL_LABELS = {
    "zh": {
        "title": "析因分析：主效应与交互作用", "design": "因子与水平", "fraction": "部分析因设计 {fraction}，定义关系 {relation}",
        "aliases": "混杂（无法区分）", "mains": "主效应（水平 vs 参照水平，对其他因子等权平均）",
        "interactions": "两因子交互作用（差中差，对其余因子等权平均）", "factor": "因子", "level": "水平", "reference": "参照",
        "effect": "效应 (95% CI)", "pair": "因子对", "levels": "水平", "roi": "各水平的成本与 ROI（相对自然回流）",
        "inc_rate": "增量回流率 (95% CI)", "cost_pc": "每客户成本", "extra": "相对参照的额外回流率 (95% CI)",
        "per_extra": "每多回流一位客户的额外成本", "recommendation": "建议", "family": "主效应与交互作用单独构成一个多重检验族（{correction}）",
        "per_extra_sentence": "{factor} {level} 相对 {reference}：每位客户{more_less} {extra_cost}，每多回流一位客户的成本为 {per_extra}{ci}。",
        "per_extra_none": "{factor} {level} 相对 {reference}：每位客户{more_less} {extra_cost}，但额外回流 {extra} {extra_ci} 不显著，无法给出每位额外回流客户的成本。",
        "per_extra_cheaper": "{factor} {level} 相对 {reference}：每位客户{more_less} {extra_cost}，且额外回流 {extra} {extra_ci}：更便宜也更有效。",
        "more": "多花", "less": "少花",
    },
    "en": {
        "title": "Factorial analysis: main effects and interactions", "design": "Factors and levels",
        "fraction": "Fractional design {fraction}, defining relation {relation}", "aliases": "Aliased (cannot be told apart)",
        "mains": "Main effects (level vs reference, averaged over the other factors with equal weight)",
        "interactions": "Two-way interactions (difference of differences, averaged over the remaining factors)",
        "factor": "Factor", "level": "Level", "reference": "Reference", "effect": "Effect (95% CI)", "pair": "Factors",
        "levels": "Levels", "roi": "Cost and ROI per level (over the natural return)",
        "inc_rate": "Incremental return rate (95% CI)", "cost_pc": "Cost per customer",
        "extra": "Extra return rate over the reference (95% CI)", "per_extra": "Cost per extra returned customer",
        "recommendation": "Recommendation", "family": "Main effects and interactions form their own multiple-testing family ({correction})",
        "per_extra_sentence": "{factor} {level} over {reference} costs {extra_cost} {more_less} per customer: {per_extra} per extra returned customer{ci}.",
        "per_extra_none": "{factor} {level} over {reference} costs {extra_cost} {more_less} per customer, but its extra returns {extra} {extra_ci} are not significant: no cost per extra returned customer yet.",
        "per_extra_cheaper": "{factor} {level} over {reference} costs {extra_cost} {more_less} per customer and returns {extra} more {extra_ci}: cheaper and better.",
        "more": "more", "less": "less",
    },
}


def _fmt_roi(x: float) -> str:
    return f"{x:.2f}×" if math.isfinite(x) else "–"


def level_label(factor: str, level: str, currency: str = "¥") -> str:
    """How a level reads in a sentence: ¥10 for a coupon, 20:00 for a send hour, else the level."""
    if factor == "coupon":
        return f"{currency}{level}"
    if factor == "send_hour":
        return f"{int(level):02d}:00" if level.isdigit() else level
    return level


def recommendation_lines(report: Report, lang: str = "zh", currency: str = "¥") -> list[str]:
    """The recommendation in sentences, each with its uncertainty (see analysis.factorial.Pick)."""
    F = FACTORIAL_LABELS[lang]
    # The same words as the verdict's reasons (analysis.verdict.factorial_reasons), so the report, its
    # JSON's verdict and the app say one thing.
    out = [reason_text(r, lang, currency) + ("。" if lang == "zh" else ".") for r in factorial_reasons(report)]
    for r in report.factor_roi:
        if r.level == r.reference:
            continue
        names = dict(factor=r.factor, level=level_label(r.factor, r.level, currency),
                     reference=level_label(r.factor, r.reference, currency),
                     extra_cost=fmt_money(abs(r.extra_cost_per_customer), currency),
                     more_less=F["more" if r.extra_cost_per_customer > 0 else "less"])
        if r.extra_cost_per_customer <= 0 and r.extra_return_rate_ci[0] > 0:
            out.append(F["per_extra_cheaper"].format(extra=_difference(r.extra_return_rate, "binary", lang),
                                                     extra_ci=fmt_difference_ci(r.extra_return_rate_ci, "binary"),
                                                     **names))
        elif r.cost_per_extra_return is not None and r.extra_return_rate_ci[0] > 0:
            interval = r.cost_per_extra_return_ci
            bounds = (f" [{fmt_money(interval[0], currency)}, {fmt_money(interval[1], currency)}]"
                      if interval else "")
            out.append(F["per_extra_sentence"].format(per_extra=fmt_money(r.cost_per_extra_return, currency),
                                                      ci=bounds, **names))
        else:
            out.append(F["per_extra_none"].format(extra=_difference(r.extra_return_rate, "binary", lang),
                                                  extra_ci=fmt_difference_ci(r.extra_return_rate_ci, "binary"),
                                                  **names))
    return out


def factorial_section(report: Report, lang: str = "zh", currency: str = "¥") -> list[str]:
    """Factors, main effects, interactions, ROI per level and the recommendation, as Markdown."""
    F, L = FACTORIAL_LABELS[lang], LABELS[lang]
    design = report.factorial
    assert design is not None
    out = [f"## {F['title']}", "", f"**{F['design']}**: " + "; ".join(
        f"{f} = {', '.join(levels)}" for f, levels in design.factors.items()), ""]
    if design.defining_relation:
        out += [F["fraction"].format(fraction=design.fraction, relation=", ".join(design.defining_relation)), ""]
        out += [f"- {F['aliases']}: {effect} = {' = '.join(others)}" for effect, others in design.aliases.items()]
        out.append("")
    out += [f"{F['family'].format(correction=report.correction)}; {L['method']}: {design.method}", "",
            f"### {F['mains']}", "",
            f"| {L['metric']} | {F['factor']} | {F['level']} | {F['reference']} | {F['effect']} | {L['p']} "
            f"| {L['p_adj']} | {L['sig']} |",
            "|---|---|---|---|---|---:|---:|:---:|"]
    for e in report.factors:
        out.append(f"| {metric_label(e.metric, lang)} | {e.factor} | {e.level} | {e.reference} "
                   f"| {fmt_difference(e.abs_effect, e.kind, lang)} {_beside(e.abs_ci, e.kind)} | {fmt_p(e.p_value)} "
                   f"| {fmt_p(e.p_value_adjusted)} | {L['yes'] if e.significant else L['no']} |")
    if report.interactions:
        out += ["", f"### {F['interactions']}", "",
                f"| {L['metric']} | {F['pair']} | {F['levels']} | {F['effect']} | {L['p']} | {L['p_adj']} | {L['sig']} |",
                "|---|---|---|---|---:|---:|:---:|"]
        for i in report.interactions:
            out.append(f"| {metric_label(i.metric, lang)} | {' × '.join(i.factors)} "
                       f"| {i.levels[0]} vs {i.references[0]} × {i.levels[1]} vs {i.references[1]} "
                       f"| {fmt_difference(i.abs_effect, i.kind, lang)} {_beside(i.abs_ci, i.kind)} "
                       f"| {fmt_p(i.p_value)} | {fmt_p(i.p_value_adjusted)} | {L['yes'] if i.significant else L['no']} |")
    if report.factor_roi:
        out += ["", f"### {F['roi']}", "",
                f"| {F['factor']} | {F['level']} | {F['inc_rate']} | {F['cost_pc']} | ROI | {F['extra']} "
                f"| {F['per_extra']} |",
                "|---|---|---|---:|---:|---|---:|"]
        for r in report.factor_roi:
            base = r.level == r.reference
            out.append(f"| {r.factor} | {r.level} | {fmt_difference(r.incremental_return_rate, 'binary', lang)} "
                       f"{_beside(r.incremental_return_rate_ci, 'binary')} | {fmt_money(r.cost_per_customer, currency)} "
                       f"| {'–' if r.roi is None else _fmt_roi(r.roi)} "
                       f"| {'–' if base else fmt_difference(r.extra_return_rate, 'binary', lang) + ' ' + _beside(r.extra_return_rate_ci, 'binary')} "
                       f"| {fmt_money(r.cost_per_extra_return, currency)} |")
    if report.recommendation:
        out += ["", f"### {F['recommendation']}", ""] + [f"- {line}" for line in recommendation_lines(report, lang, currency)]
    return out + [""]
