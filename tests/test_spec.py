"""Spec validation: every bad spec is rejected with a message naming the field."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path

import pytest

from experiments.spec import SpecError, load_spec, parse_spec

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "winback-coupon.toml"


@pytest.fixture
def spec_data() -> dict:
    return tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))


def problems(data: dict) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as info:
        parse_spec(data, "bad.toml")
    assert str(info.value).startswith("bad.toml: ")
    return info.value.problems


def test_example_spec_is_valid() -> None:
    spec = load_spec(EXAMPLE)
    assert spec.control.name == "holdout"
    assert [v.name for v in spec.contacted] == ["coupon5_sms_10h", "coupon10_sms_10h"]
    assert sum(v.share for v in spec.variants) == pytest.approx(1)


def test_shares_must_sum_to_one(spec_data: dict) -> None:
    spec_data["variants"][1]["share"] = 0.5
    assert problems(spec_data) == [("variants", "variant shares must sum to 1; they sum to 1.05")]


def test_no_control(spec_data: dict) -> None:
    spec_data["variants"][0]["control"] = False
    spec_data["variants"][0].update(channel="sms", template="回TD退订", send_hour=10)
    [(field, message)] = problems(spec_data)
    assert field == "variants" and "exactly one variant must be the no-contact control" in message and "found 0" in message


def test_two_controls(spec_data: dict) -> None:
    spec_data["variants"].append({"name": "holdout2", "share": 0.1, "control": True})
    spec_data["variants"][1]["share"] = 0.35
    [(field, message)] = problems(spec_data)
    assert field == "variants" and "found 2: holdout, holdout2" in message


def test_send_hour_out_of_range(spec_data: dict) -> None:
    spec_data["variants"][1]["send_hour"] = 25
    [(field, message)] = problems(spec_data)
    assert field == "variants[1].send_hour" and "23" in message and "25" in message


def test_negative_coupon(spec_data: dict) -> None:
    spec_data["variants"][2]["coupon"] = -5
    [(field, message)] = problems(spec_data)
    assert field == "variants[2].coupon" and "-5" in message


def test_duplicate_names(spec_data: dict) -> None:
    spec_data["variants"][2]["name"] = "coupon5_sms_10h"
    assert problems(spec_data) == [("variants", "variant names must be unique; repeated: coupon5_sms_10h")]


def test_unknown_channel(spec_data: dict) -> None:
    spec_data["variants"][1]["channel"] = "fax"
    [(field, message)] = problems(spec_data)
    assert field == "variants[1].channel" and "'sms'" in message and "fax" in message


def test_unknown_cohort_and_metric(spec_data: dict) -> None:
    spec_data["cohort"] = "vip"
    spec_data["primary_metric"] = "happiness"
    found = dict(problems(spec_data))
    assert "unknown cohort 'vip'" in found["cohort"] and "lapsed_1_3m" in found["cohort"]
    assert "unknown metric 'happiness'" in found["primary_metric"]


def test_contacted_variant_needs_channel_template_and_hour(spec_data: dict) -> None:
    for key in ("channel", "template", "send_hour"):
        del spec_data["variants"][1][key]
    [(field, message)] = problems(spec_data)
    assert field == "variants[1]" and message == "a contacted variant needs channel, send_hour, template"


def test_control_is_never_contacted(spec_data: dict) -> None:
    spec_data["variants"][0]["channel"] = "sms"
    [(field, message)] = problems(spec_data)
    assert field == "variants[0]" and "never messaged" in message


def test_unknown_placeholder(spec_data: dict) -> None:
    spec_data["variants"][1]["template"] = "{name}您好 回TD退订"
    [(field, message)] = problems(spec_data)
    assert field == "variants[1].template" and "{name}" in message and "{coupon}" in message


def test_unknown_field_and_missing_name(spec_data: dict) -> None:
    del spec_data["name"]
    spec_data["budget"] = 100
    found = dict(problems(spec_data))
    assert set(found) == {"name", "budget"}


def test_several_problems_reported_together(spec_data: dict) -> None:
    spec_data["attribution_days"] = 0
    spec_data["variants"][1]["send_hour"] = -1
    spec_data["variants"][2]["share"] = 2
    fields = [field for field, _ in problems(spec_data)]
    assert fields == ["attribution_days", "variants[1].send_hour", "variants[2].share"]


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="file not found"):
        load_spec(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [", encoding="utf-8")
    with pytest.raises(SpecError, match=r"bad.toml: not valid TOML"):
        load_spec(bad)


def test_spec_is_immutable(spec_data: dict) -> None:
    spec = parse_spec(copy.deepcopy(spec_data))
    with pytest.raises(Exception):
        spec.name = "other"  # type: ignore[misc]


def test_template_must_pass_the_message_checks(spec_data: dict) -> None:
    spec_data["variants"][1]["template"] = "【好物商城】稳赚不赔，{coupon}元礼金"
    (field, message), *_ = problems(spec_data)
    assert field == "variants[1]"
    assert "UNSUBSCRIBE_MISSING" in message and "BANNED_PHRASE" in message


@pytest.mark.parametrize("hour", [21, 23, 0, 7])
def test_send_hour_in_quiet_hours_is_rejected(spec_data: dict, hour: int) -> None:
    spec_data["variants"][1]["send_hour"] = hour
    (field, message), = problems(spec_data)
    assert field == "variants[1].send_hour" and "quiet hours 21:00-08:00" in message


@pytest.mark.parametrize("hour", [8, 20])
def test_send_hours_at_the_edges_of_quiet_hours_are_allowed(spec_data: dict, hour: int) -> None:
    spec_data["variants"][1]["send_hour"] = hour
    assert parse_spec(spec_data).variants[1].send_hour == hour


def _with_touches(spec_data: dict, touches: list[dict]) -> dict:
    spec_data["variants"][1]["touches"] = touches
    return spec_data


REMINDER = {"day": 4, "channel": "sms", "template": "【好物商城】您的{coupon}元礼金3天后过期 回TD退订", "send_hour": 10}


def test_a_sequence_of_touches_is_valid(spec_data: dict) -> None:
    spec = parse_spec(_with_touches(spec_data, [REMINDER, {**REMINDER, "day": 7, "send_hour": 20}]))
    assert [t.day for t in spec.variants[1].touches] == [4, 7]


@pytest.mark.parametrize(
    ("touches", "field", "fragment"),
    [
        ([{**REMINDER, "send_hour": 22}], "variants[1].touches[0].send_hour", "quiet hours"),
        ([{**REMINDER, "template": "礼金过期提醒"}], "variants[1].touches[0]", "UNSUBSCRIBE_MISSING"),
        ([{**REMINDER, "channel": "fax"}], "variants[1].touches[0].channel", "fax"),
        ([REMINDER, REMINDER], "variants[1]", "increasing days"),
        ([{**REMINDER, "day": 14}], "", "inside the 14-day attribution window"),
    ],
)
def test_bad_touches_are_located(spec_data: dict, touches: list[dict], field: str, fragment: str) -> None:
    (got_field, message), *_ = problems(_with_touches(spec_data, touches))
    assert got_field == field and fragment in message


def test_the_control_has_no_touches(spec_data: dict) -> None:
    spec_data["variants"][0]["touches"] = [REMINDER]
    (field, message), *_ = problems(spec_data)
    assert field == "variants[0]" and "never messaged" in message


def test_finance_vertical_needs_a_risk_disclaimer(spec_data: dict) -> None:
    spec_data["vertical"] = "finance"
    (field, message), = problems(spec_data)
    assert field == "" and "coupon5_sms_10h, coupon10_sms_10h" in message and "risk disclaimer" in message
    for v in spec_data["variants"][1:]:
        v["template"] = v["template"].replace("回TD退订", "理财有风险 回TD退订")
    assert parse_spec(spec_data).vertical == "finance"


def test_configured_unsubscribe_suffix_and_banned_phrases(spec_data: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECALL_UNSUBSCRIBE_SUFFIXES", "退订回N")
    (field, message), *_ = problems(spec_data)
    assert field == "variants[1]" and "UNSUBSCRIBE_MISSING" in message and "退订回N" in message
    monkeypatch.delenv("RECALL_UNSUBSCRIBE_SUFFIXES")
    monkeypatch.setenv("RECALL_BANNED_PHRASES", "好久不见")
    (field, message), *_ = problems(spec_data)
    assert field == "variants[1]" and "BANNED_PHRASE" in message


def test_experiment_name_fits_the_salt_column(spec_data: dict) -> None:
    spec_data["name"] = "x" * 65
    (field, message), = problems(spec_data)
    assert field == "name" and "64" in message
    spec_data["name"] = "x" * 64
    assert parse_spec(spec_data).name == "x" * 64


def test_a_name_too_long_for_a_file_name_is_refused_at_create(spec_data: dict) -> None:
    """64 Chinese characters fit the salt column (64) but not ``<experiment>__<variant>.csv`` (255 bytes)."""
    spec_data["name"] = "冬季召回" * 16
    (field, message), = problems(spec_data)
    assert (field, message) == ("name", "name is 192 bytes of UTF-8, more than 120 (a Chinese character takes 3)")
    spec_data["name"] = "冬季召回" * 10  # 120 bytes: the longest that fits
    assert parse_spec(spec_data).name == "冬季召回" * 10
    spec_data["variants"][1]["name"] = "短信" * 21  # 126 bytes
    (field, message), = problems(spec_data)
    assert field == "variants[1].name" and "126 bytes" in message


@pytest.mark.parametrize(("name", "fragment"), [
    ("../escaped", "contains a path separator"),
    ("a\\b", "contains a path separator"),
    ("a\x00b", "control character (U+0000)"),
    ("a\nb", "control character (U+000A)"),
    ("..", "is not a name"),
    ("-x", "should match pattern"),
    ("a b", "should match pattern"),
])
def test_names_that_cannot_name_a_file_are_refused(spec_data: dict, name: str, fragment: str) -> None:
    for where in ("name", "variant"):
        data = copy.deepcopy(spec_data)
        if where == "name":
            data["name"] = name
        else:
            data["variants"][2]["name"] = name
        (field, message), = problems(data)
        assert field == ("name" if where == "name" else "variants[2].name") and fragment in message


def test_names_are_stored_nfc_normalised(spec_data: dict) -> None:
    spec_data["name"] = "cafe\u0301-召回"  # e + combining acute: NFC makes it one character
    spec_data["variants"][1]["name"] = "  sms_c5  "
    spec = parse_spec(spec_data)
    assert spec.name == "caf\u00e9-召回" and spec.variants[1].name == "sms_c5"


@pytest.mark.parametrize(("template", "code"), [
    ("{coupon:,}元礼金 回TD退订", "PLACEHOLDER_NOT_PLAIN"),
    ("{customer_id:>400000000} 回TD退订", "PLACEHOLDER_NOT_PLAIN"),
    ("{coupon!r}元礼金 回TD退订", "PLACEHOLDER_NOT_PLAIN"),
    ("{coupon.real}元礼金 回TD退订", "PLACEHOLDER_NOT_PLAIN"),
    ("{coupon[0]}元礼金 回TD退订", "PLACEHOLDER_NOT_PLAIN"),
    ("{0}元礼金 回TD退订", "PLACEHOLDER_NOT_PLAIN"),
    ("{}元礼金 回TD退订", "PLACEHOLDER_NOT_PLAIN"),
    ("{coupon:{send_date}}元礼金 回TD退订", "PLACEHOLDER_NOT_PLAIN"),
    ("{coupon元礼金 回TD退订", "TEMPLATE_MALFORMED"),
    ("coupon}元礼金 回TD退订", "TEMPLATE_MALFORMED"),
])
def test_templates_allow_only_plain_placeholders(spec_data: dict, template: str, code: str) -> None:
    for touch in (False, True):
        data = copy.deepcopy(spec_data)
        if touch:
            data["variants"][2]["touches"] = [dict(day=3, channel="sms", template=template, send_hour=10)]
        else:
            data["variants"][2]["template"] = template
        (field, message), = problems(data)
        assert field == ("variants[2].touches[0].template" if touch else "variants[2].template")
        assert message.startswith(f"{code}: ")
