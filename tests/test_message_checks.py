"""Message checks: carrier SMS counting, unsubscribe suffix, banned phrases, personal data, MMS size."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cli import app
from experiments.message_checks import CheckPolicy, Severity, check_message, sms_length

GOOD = "【好物商城】好久不见！为您预留{coupon}元礼金，3天内有效，戳 m.haowu.cn/r 回TD退订"


def codes(text: str, channel: str = "sms", **kwargs) -> set[str]:  # noqa: ANN003
    return {f.code for f in check_message(text, channel, **kwargs).findings if f.severity == Severity.ERROR}


@pytest.mark.parametrize(
    ("text", "encoding", "characters", "parts"),
    [
        ("a" * 160, "gsm", 160, 1),
        ("a" * 161, "gsm", 161, 2),          # long GSM: 153 per part
        ("a" * 306, "gsm", 306, 2),
        ("a" * 307, "gsm", 307, 3),
        ("a" * 79 + "€", "gsm", 81, 1),      # the euro sign is an escape sequence: two septets
        ("好" * 70, "ucs2", 70, 1),
        ("好" * 71, "ucs2", 71, 2),          # any Chinese character: 70 for one part, 67 per part
        ("好" * 134, "ucs2", 134, 2),
        ("好" * 135, "ucs2", 135, 3),
        ("a" * 69 + "好", "ucs2", 70, 1),
        ("😀" * 35, "ucs2", 70, 1),           # outside the BMP: two UTF-16 units each
    ],
)
def test_sms_length_counts_like_carriers(text: str, encoding: str, characters: int, parts: int) -> None:
    length = sms_length(text)
    assert (length.encoding, length.characters, length.parts) == (encoding, characters, parts)


def test_a_good_template_passes_and_counts_the_rendered_text() -> None:
    result = check_message(GOOD)
    assert result.ok
    # {coupon} renders as "10": the length is that of what customers receive
    assert result.sms.characters == len(GOOD.replace("{coupon}", "10"))


def test_long_sms_warns_then_blocks_past_the_part_limit() -> None:
    two_parts = "好" * 100 + "回TD退订"
    assert check_message(two_parts).ok
    assert {f.code for f in check_message(two_parts).findings} >= {"SMS_MULTIPART"}
    assert "SMS_MULTIPART" in codes("好" * 300 + "回TD退订")
    assert "SMS_MULTIPART" not in codes("好" * 300 + "回TD退订", policy=CheckPolicy(max_sms_parts=5))


def test_unsubscribe_suffix_is_required_for_sms_and_mms_only() -> None:
    text = "【好物商城】为您预留10元礼金"
    assert "UNSUBSCRIBE_MISSING" in codes(text)
    assert "UNSUBSCRIBE_MISSING" in codes(text, "mms")
    assert "UNSUBSCRIBE_MISSING" not in codes(text, "push")
    assert "UNSUBSCRIBE_MISSING" not in codes(text + " 拒收请回复R")
    assert "UNSUBSCRIBE_MISSING" not in codes(text + " 退订回N", policy=CheckPolicy(unsubscribe_suffixes=("退订回N",)))


def test_banned_phrases_default_and_configured() -> None:
    assert "BANNED_PHRASE" in codes("100%中奖，快来 回TD退订")
    assert "BANNED_PHRASE" in codes("理财保本高收益 回TD退订")
    assert "BANNED_PHRASE" not in codes(GOOD)
    assert "BANNED_PHRASE" in codes(GOOD.replace("好久不见", "限时秒杀"), policy=CheckPolicy(extra_banned=("秒杀",)))


def test_finance_needs_a_risk_disclaimer() -> None:
    text = "【好物理财】新人专享年化4%理财 回TD退订"
    assert "RISK_DISCLAIMER_MISSING" in codes(text, vertical="finance")
    assert "RISK_DISCLAIMER_MISSING" not in codes(text)
    assert "RISK_DISCLAIMER_MISSING" not in codes(text.replace("回TD", "理财有风险，投资需谨慎 回TD"), vertical="finance")


@pytest.mark.parametrize(
    ("fragment", "code"),
    [
        ("致电13812345678", "PERSONAL_DATA_PHONE"),
        ("身份证11010519491231002X", "PERSONAL_DATA_ID_NUMBER"),
        ("收货地址南京东路100号", "PERSONAL_DATA_ADDRESS"),
        ("订单202612010000123已发货", "PERSONAL_DATA_ORDER_NUMBER"),
    ],
)
def test_personal_data_is_an_error(fragment: str, code: str) -> None:
    assert code in codes(f"【好物商城】{fragment} 回TD退订")


def test_masked_personal_data_passes() -> None:
    assert codes("【好物商城】尾号5678的会员，订单***0123已发货 回TD退订") == set()


def test_an_id_number_is_not_also_reported_as_an_order_number() -> None:
    found = codes("【好物商城】身份证11010519491231002X 回TD退订")
    assert "PERSONAL_DATA_ORDER_NUMBER" not in found


def test_placeholders_customer_data_cannot_fill() -> None:
    assert "UNKNOWN_PLACEHOLDER" in codes("【好物商城】{name}您好 回TD退订")
    assert "TEMPLATE_MALFORMED" in codes("【好物商城】{coupon 回TD退订")


def test_mms_size_limit_counts_the_attachment() -> None:
    assert "MMS_TOO_LARGE" not in codes(GOOD, "mms", attachment_bytes=400 * 1024)
    assert "MMS_TOO_LARGE" in codes(GOOD, "mms", attachment_bytes=500 * 1024)


def test_every_finding_speaks_both_languages() -> None:
    result = check_message("稳赚 13812345678 {x}", vertical="finance")
    assert result.findings
    for finding in result.findings:
        assert finding.message("zh") != finding.message("en")
        assert any("\u4e00" <= ch <= "\u9fff" for ch in finding.message_zh)


def test_cli_exit_status_and_json(tmp_path) -> None:  # noqa: ANN001
    runner = CliRunner()
    ok = runner.invoke(app, ["check-message", GOOD])
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(app, ["check-message", "稳赚！", "--format", "json", "--lang", "en"])
    assert bad.exit_code == 1
    data = json.loads(bad.stdout)
    assert data["ok"] is False and "BANNED_PHRASE" in {f["code"] for f in data["findings"]}
    picture = tmp_path / "big.jpg"
    picture.write_bytes(b"\0" * (600 * 1024))
    mms = runner.invoke(app, ["check-message", GOOD, "--channel", "mms", "--attachment", str(picture)])
    assert mms.exit_code == 1 and "MMS_TOO_LARGE" in mms.output
    unknown = runner.invoke(app, ["check-message", GOOD, "--channel", "fax"])
    assert unknown.exit_code == 1 and "unknown channel" in unknown.output


# Real-looking recall messages and the errors an operator expects (an empty set: the text may go out).
SMS_TABLE: list[tuple[str, set[str]]] = [
    ("【好物商城】好久不见！为您预留10元礼金，3天内有效，戳 m.haowu.cn/r 回TD退订", set()),
    ("【好物商城】亲～10元红包已到账，今晚8点前下单立减，快来看看吧 回TD退订", set()),
    ("【好物商城】尊敬的会员，您的20元无门槛券将于12月3日到期，请及时使用。拒收请回复R", set()),
    ("【鲜果到家】想你啦！新人专享立减20元，草莓低至9.9元/盒 m.xgdj.cn 回T退订", set()),
    ("【好物商城】您的5元优惠券即将过期 回TD退订", set()),
    ("【好物商城】好久不见！为您预留10元礼金，3天内有效", {"UNSUBSCRIBE_MISSING"}),
    ("【好物商城】100%中奖！回来就送iPhone 回TD退订", {"BANNED_PHRASE"}),
    ("【好物理财】稳赚不赔，年化8% 回TD退订", {"BANNED_PHRASE"}),
    ("【好物理财】保本理财限时抢购 回TD退订", {"BANNED_PHRASE"}),
    ("【好物商城】全网最高级会员福利 回TD退订", {"BANNED_PHRASE"}),
    ("【好物商城】王先生您好，您在南京东路100号的订单已送达 回TD退订", {"PERSONAL_DATA_ADDRESS"}),
    ("【好物商城】您的账号13812345678已冻结，请联系客服 回TD退订", {"PERSONAL_DATA_PHONE"}),
    ("【好物商城】尾号5678的会员，您有一张券待领取 回TD退订", set()),
    ("【好物商城】订单202612010000123已发货，点击查看物流 回TD退订", {"PERSONAL_DATA_ORDER_NUMBER"}),
    ("【好物商城】实名认证失败：身份证11010519491231002X 回TD退订", {"PERSONAL_DATA_ID_NUMBER"}),
    ("【好物商城】{name}您好，10元礼金已到账 回TD退订", {"UNKNOWN_PLACEHOLDER"}),
    ("【好物商城】{coupon}元礼金已到账，{send_date}前有效 回TD退订", set()),
    ("【好物商城】编号{customer_id}的会员专享{coupon}元礼金 回TD退订", set()),
    ("【好物商城】{coupon元礼金已到账 回TD退订", {"TEMPLATE_MALFORMED"}),
    ("【好物商城】" + "年终大促，全场满199减100，" * 12 + "回TD退订", {"SMS_MULTIPART"}),
    ("【好物商城】" + "年终大促，全场满199减100，" * 4 + "回TD退订", set()),  # 2-3 parts: a warning only
    ("[HaowuMall] We miss you! Here is a 10 yuan coupon, valid 3 days: m.haowu.cn/r Reply TD to opt out 回TD退订",
     set()),
    ("[HaowuMall] 100%中奖 guaranteed prize! 回TD退订", {"BANNED_PHRASE"}),
    ("[HaowuMall] Your coupon expires tomorrow. Call 13912345678 回TD退订", {"PERSONAL_DATA_PHONE"}),
    ("[HaowuMall] Come back for 10 yuan off", {"UNSUBSCRIBE_MISSING"}),
    ("[HaowuMall] Hi {first_name}, your coupon is waiting 回TD退订", {"UNKNOWN_PLACEHOLDER"}),
    ("[HaowuMall] " + "Big winter sale, everything 50% off, " * 14 + "回TD退订", {"SMS_MULTIPART"}),
    ("【好物商城】零风险试用，不满意包退 回TD退订", {"BANNED_PHRASE"}),
    ("【好物商城】稳赚！订单202612010000999，送至人民路8号 13600001111",
     {"BANNED_PHRASE", "UNSUBSCRIBE_MISSING", "PERSONAL_DATA_ORDER_NUMBER", "PERSONAL_DATA_ADDRESS",
      "PERSONAL_DATA_PHONE"}),
    ("【好物商城】会员日：满100减20，仅限今天 退订回T", {"UNSUBSCRIBE_MISSING"}),
    ("【好物商城】您关注的商品降价了，立减20元 拒收请回复R", set()),
    ("【好物商城】客服热线400-820-8820，为您预留20元礼金 回TD退订", set()),
]


@pytest.mark.parametrize(("text", "expected"), SMS_TABLE, ids=[f"sms{i:02d}" for i in range(len(SMS_TABLE))])
def test_real_looking_sms_table(text: str, expected: set[str]) -> None:
    assert len(SMS_TABLE) >= 30
    assert codes(text) == expected


@pytest.mark.parametrize("template", [
    "{coupon:,}元礼金 回TD退订", "{customer_id:>400000000} 回TD退订", "{coupon!r} 回TD退订", "{coupon.x} 回TD退订",
    "{0} 回TD退订", "{} 回TD退订", "{coupon:{x}} 回TD退订", "{{{coupon:>99999999999}}} 回TD退订",
])
def test_a_placeholder_that_is_not_plain_is_an_error_not_a_crash(template: str) -> None:
    result = check_message(template)
    [finding] = [f for f in result.findings if f.severity == Severity.ERROR]
    assert finding.code == "PLACEHOLDER_NOT_PLAIN" and not result.ok
    assert "只允许 {名称} 形式" in finding.message_zh and "only a plain {name}" in finding.message_en


def test_literal_braces_are_written_doubled() -> None:
    assert codes("【好物商城】{{限时}}{coupon}元礼金 回TD退订") == set()
    assert codes("【好物商城】{限时 回TD退订") == {"TEMPLATE_MALFORMED"}


@pytest.mark.parametrize(("template", "code", "fragment"), [
    ("{customer_id:>400000000}回TD退订", "PLACEHOLDER_NOT_PLAIN", "placeholder {customer_id:>400000000} is not allowed"),
    ("{coupon:,}回TD退订", "PLACEHOLDER_NOT_PLAIN", "placeholder {coupon:,} is not allowed"),
    ("{coupon回TD退订", "TEMPLATE_MALFORMED", "unbalanced braces"),
])
def test_check_message_command_reports_bad_templates_cleanly(template: str, code: str, fragment: str) -> None:
    result = CliRunner().invoke(app, ["check-message", template, "--lang", "en"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit)  # typer.Exit(1), no crash
    assert f"error   {code}: " in result.output and fragment in result.output
    assert "Traceback" not in result.output
    data = json.loads(CliRunner().invoke(app, ["check-message", template, "-f", "json"]).output)
    assert code in {f["code"] for f in data["findings"]} and data["ok"] is False


def test_rendering_refuses_a_template_that_is_not_plain() -> None:
    """A template stored before the check cannot reach str.format either."""
    from datetime import datetime
    from decimal import Decimal

    from experiments.messages import MessageContext, TemplateError, render

    context = MessageContext(Decimal("10"), "C1", datetime(2026, 12, 1, 10))
    assert render("{coupon}元 {send_date} {{ok}}", context) == "10元 12月1日 {ok}"
    for template, code in (("{customer_id:>400000000}", "PLACEHOLDER_NOT_PLAIN"), ("{name}", "UNKNOWN_PLACEHOLDER"),
                           ("{coupon", "TEMPLATE_MALFORMED")):
        with pytest.raises(TemplateError) as info:
            render(template, context)
        assert info.value.code == code
