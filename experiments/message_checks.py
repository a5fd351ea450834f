"""Message checks: what an operator verifies before an SMS, push or e-mail may go out.

Carriers bill SMS by parts, regulators require an unsubscribe instruction and forbid promises of
gain, and a template must never leak personal data. Each rule yields :class:`Finding` objects with a
stable code, a severity and a message in Chinese and English; any ``error`` blocks the send
(``recall check-message`` exits with status 1, design validation rejects the template). A template
that is not plain text with ``{name}`` placeholders is an error too (``TEMPLATE_MALFORMED``,
``PLACEHOLDER_NOT_PLAIN``; see :mod:`experiments.messages`), found before anything is rendered.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import Enum

from experiments.messages import PLACEHOLDERS, MessageContext, TemplateError, render, unknown_placeholders

# GSM 03.38: the basic set counts one septet, the extension set two (escape + char).
GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = set("^{}\\[~]|€\f")
SMS_LIMITS = {"gsm": (160, 153), "ucs2": (70, 67)}  # (single message, per part of a long message)
MMS_MAX_BYTES = 500 * 1024

DEFAULT_UNSUBSCRIBE_SUFFIXES = ("回TD退订", "拒收请回复R", "回T退订")
DEFAULT_BANNED_PHRASES = ("100%中奖", "稳赚", "保本", "零风险", "无风险", "稳赚不赔", "保证收益", "最高级", "国家级")
FINANCE_DISCLAIMERS = ("投资有风险", "理财有风险", "市场有风险")

PERSONAL_DATA = {
    "phone": re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)"),
    "id_number": re.compile(r"(?<!\d)\d{17}[\dXx](?!\d)"),
    "address": re.compile(r"[\u4e00-\u9fff]{1,12}(路|街|大道|巷|弄)\d+号"),
    "order_number": re.compile(r"(?<![\dA-Za-z])\d{12,}(?![\dA-Za-z])"),
}


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True)
class Finding:
    code: str
    severity: Severity
    message_zh: str
    message_en: str

    def message(self, lang: str = "zh") -> str:
        return self.message_zh if lang == "zh" else self.message_en


@dataclass(frozen=True)
class SmsLength:
    """How carriers count a text: encoding, billed characters and parts."""

    encoding: str
    characters: int
    parts: int


@dataclass(frozen=True)
class CheckResult:
    text: str
    channel: str
    findings: list[Finding]
    sms: SmsLength | None = None

    @property
    def ok(self) -> bool:
        return not any(f.severity == Severity.ERROR for f in self.findings)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["ok"] = self.ok
        data["findings"] = [{**asdict(f), "severity": f.severity.value} for f in self.findings]
        return data


@dataclass(frozen=True)
class CheckPolicy:
    """The rules a team configures; the defaults follow common Chinese carrier practice."""

    unsubscribe_suffixes: Sequence[str] = DEFAULT_UNSUBSCRIBE_SUFFIXES
    banned_phrases: Sequence[str] = DEFAULT_BANNED_PHRASES
    max_sms_parts: int = 3
    extra_banned: Sequence[str] = field(default_factory=tuple)

    @classmethod
    def from_env(cls) -> CheckPolicy:
        """``RECALL_UNSUBSCRIBE_SUFFIXES`` replaces the accepted unsubscribe instructions and
        ``RECALL_BANNED_PHRASES`` adds banned phrases (comma-separated), ``RECALL_MAX_SMS_PARTS``."""
        env = os.environ
        suffixes = _list(env.get("RECALL_UNSUBSCRIBE_SUFFIXES", "")) or DEFAULT_UNSUBSCRIBE_SUFFIXES
        return cls(unsubscribe_suffixes=suffixes, extra_banned=_list(env.get("RECALL_BANNED_PHRASES", "")),
                   max_sms_parts=int(env.get("RECALL_MAX_SMS_PARTS", 3)))


def _list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def sms_length(text: str) -> SmsLength:
    """Characters and parts as billed: GSM-7 160/153, else UCS-2 70/67 (3GPP TS 23.038/23.040)."""
    if all(ch in GSM_BASIC or ch in GSM_EXTENSION for ch in text):
        encoding, characters = "gsm", sum(2 if ch in GSM_EXTENSION else 1 for ch in text)
    else:
        # UCS-2 counts UTF-16 code units: an emoji outside the BMP takes two.
        encoding, characters = "ucs2", len(text.encode("utf-16-le")) // 2
    single, per_part = SMS_LIMITS[encoding]
    parts = 1 if characters <= single else -(-characters // per_part)
    return SmsLength(encoding, characters, parts)


def _sample(template: str) -> str:
    """The template rendered with typical values, so lengths count what customers receive."""
    if unknown_placeholders(template):
        return template
    return render(template, MessageContext(Decimal("10"), "C000000001", datetime(2026, 12, 1, 10)))


def check_message(
    text: str,
    channel: str = "sms",
    *,
    vertical: str | None = None,
    attachment_bytes: int = 0,
    policy: CheckPolicy | None = None,
) -> CheckResult:
    """Run every rule on a message (or template) for ``channel``; see the module docstring."""
    policy = policy or CheckPolicy.from_env()
    findings: list[Finding] = []
    try:
        unknown = unknown_placeholders(text)
    except TemplateError as exc:  # unbalanced braces, or a placeholder that is not a plain {name}
        unknown = []
        findings.append(Finding(exc.code, Severity.ERROR, exc.message_zh, exc.message_en))
    if unknown:
        names = ", ".join(f"{{{u}}}" for u in unknown)
        known = ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
        findings.append(Finding("UNKNOWN_PLACEHOLDER", Severity.ERROR,
                                f"客户数据无法填充占位符 {names}（可用：{known}）",
                                f"customer data cannot fill placeholder {names} (available: {known})"))
    rendered = _sample(text) if not findings else text

    sms = None
    if channel in ("sms", "mms"):
        if channel == "sms":
            sms = sms_length(rendered)
            findings += _length_findings(sms, policy)
        if not any(rendered.rstrip().endswith(s) or s in rendered for s in policy.unsubscribe_suffixes):
            suffix = policy.unsubscribe_suffixes[0]
            findings.append(Finding("UNSUBSCRIBE_MISSING", Severity.ERROR,
                                    f"缺少退订提示（例如结尾加「{suffix}」）",
                                    f"no unsubscribe instruction (e.g. end with '{suffix}')"))
    if channel == "mms":
        size = len(rendered.encode("utf-8")) + attachment_bytes
        if size > MMS_MAX_BYTES:
            findings.append(Finding("MMS_TOO_LARGE", Severity.ERROR,
                                    f"彩信大小 {size / 1024:.0f} KB 超过 500 KB 上限",
                                    f"MMS size {size / 1024:.0f} KB exceeds the 500 KB limit"))
    for phrase in (*policy.banned_phrases, *policy.extra_banned):
        if phrase.lower() in rendered.lower():
            findings.append(Finding("BANNED_PHRASE", Severity.ERROR, f"含有违禁用语「{phrase}」",
                                    f"contains the banned phrase '{phrase}'"))
    if vertical == "finance" and not any(d in rendered for d in FINANCE_DISCLAIMERS):
        findings.append(Finding("RISK_DISCLAIMER_MISSING", Severity.ERROR,
                                f"金融类营销须含风险提示（如「{FINANCE_DISCLAIMERS[0]}」）",
                                f"finance marketing needs a risk disclaimer (e.g. '{FINANCE_DISCLAIMERS[0]}')"))
    findings += _personal_data_findings(text)
    return CheckResult(text=text, channel=channel, findings=findings, sms=sms)


def _length_findings(sms: SmsLength, policy: CheckPolicy) -> list[Finding]:
    single, _ = SMS_LIMITS[sms.encoding]
    if sms.parts == 1:
        return [Finding("SMS_LENGTH", Severity.INFO, f"{sms.characters} 字，计费 1 条",
                        f"{sms.characters} characters, billed as 1 message")]
    severity = Severity.ERROR if sms.parts > policy.max_sms_parts else Severity.WARNING
    return [Finding("SMS_MULTIPART", severity,
                    f"{sms.characters} 字超过单条 {single} 字，按 {sms.parts} 条计费（上限 {policy.max_sms_parts} 条）",
                    f"{sms.characters} characters exceed {single} for one message: billed as {sms.parts} parts "
                    f"(limit {policy.max_sms_parts})")]


PERSONAL_DATA_LABELS = {
    "phone": ("完整手机号", "a full phone number"),
    "id_number": ("身份证号", "an ID number"),
    "address": ("详细地址", "a street address"),
    "order_number": ("完整订单号", "a full order number"),
}


def _personal_data_findings(text: str) -> list[Finding]:
    found = []
    id_numbers = {m.group() for m in PERSONAL_DATA["id_number"].finditer(text)}
    for kind, pattern in PERSONAL_DATA.items():
        matches = [m.group() for m in pattern.finditer(text)]
        if kind == "order_number":
            matches = [m for m in matches if m not in id_numbers]  # an ID number is reported once, as such
        if matches:
            zh, en = PERSONAL_DATA_LABELS[kind]
            found.append(Finding(f"PERSONAL_DATA_{kind.upper()}", Severity.ERROR, f"正文含有{zh}：请删除或脱敏",
                                 f"the text contains {en}: remove or mask it"))
    return found
