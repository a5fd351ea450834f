"""Factorial specs: [factors] become named cells (full and fractional), checked like any variant;
bad factors and bad cells are rejected naming the field."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from experiments.db import session_scope
from experiments.factorial import design_of
from experiments.spec import ExperimentSpec, SpecError, load_spec, parse_spec
from experiments.store import create_experiment, stored_spec

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "factorial.toml"
LIVELY = "【好物商城】亲～{coupon}元红包已到账，戳 m.haowu.cn/r 回TD退订"
PROFESSIONAL = "【好物商城】尊敬的会员，为您预留{coupon}元礼金，详见 m.haowu.cn/r 回TD退订"


@pytest.fixture
def data() -> dict:
    return dict(name="fx", cohort="lapsed_1_3m",
                factors=dict(coupon=[5, 10], wording=dict(lively=LIVELY, professional=PROFESSIONAL),
                             send_hour=[10, 20]))


def problems(data: dict) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as info:
        parse_spec(data, "bad.toml")
    return info.value.problems


def test_the_full_factorial_has_named_cells_an_equal_split_and_the_holdout(data: dict) -> None:
    spec = parse_spec(data)
    assert spec.control.name == "holdout" and spec.control.share == pytest.approx(0.1)
    assert [v.name for v in spec.contacted] == [
        "coupon5_lively_10h", "coupon5_lively_20h", "coupon5_professional_10h", "coupon5_professional_20h",
        "coupon10_lively_10h", "coupon10_lively_20h", "coupon10_professional_10h", "coupon10_professional_20h"]
    assert all(v.share == pytest.approx(0.9 / 8) for v in spec.contacted)
    cell = spec.contacted[5]
    assert (cell.coupon, cell.template, cell.send_hour, cell.channel.value) == (10, LIVELY, 20, "sms")
    assert cell.levels == {"coupon": "10", "wording": "lively", "send_hour": "20"}
    design = design_of(spec)
    assert design.factors == {"coupon": ("5", "10"), "wording": ("lively", "professional"), "send_hour": ("10", "20")}
    assert design.cells["coupon10_lively_20h"] == cell.levels and not design.aliases


def test_a_declared_control_a_holdout_share_and_a_name_pattern(data: dict) -> None:
    spec = parse_spec({**data, "variants": [dict(name="natural", share=0.2, control=True)],
                       "factorial": dict(name="c{coupon}_{wording}_{send_hour}h")})
    assert spec.control.name == "natural" and spec.contacted[0].name == "c5_lively_10h"
    assert all(v.share == pytest.approx(0.1) for v in spec.contacted)
    spec = parse_spec({**data, "factorial": dict(holdout=0.2)})
    assert spec.control.share == pytest.approx(0.2)


def test_shared_fields_and_a_channel_factor(data: dict) -> None:
    spec = parse_spec({**data, "factors": dict(channel=["sms", "push"], coupon=[0, 5]),
                       "factorial": dict(template="好物商城：{coupon}元礼金已到账 回TD退订", send_hour=10)})
    assert [v.name for v in spec.contacted] == ["sms_coupon0", "sms_coupon5", "push_coupon0", "push_coupon5"]
    assert {v.channel.value for v in spec.contacted} == {"sms", "push"}


def test_a_stored_factorial_spec_reads_back_the_same(engine, data: dict) -> None:
    spec = parse_spec(data)
    with session_scope(engine) as session:
        experiment = create_experiment(session, spec)
        assert stored_spec(experiment) == spec
        assert create_experiment(session, parse_spec(copy.deepcopy(data))) is experiment  # idempotent


def test_specs_without_factors_serialise_as_before() -> None:
    spec = load_spec(Path(__file__).resolve().parents[1] / "examples" / "winback-coupon.toml")
    dumped = spec.model_dump()
    assert "factors" not in dumped and "factorial" not in dumped
    assert all("levels" not in v for v in dumped["variants"])
    assert ExperimentSpec.model_validate_json(spec.model_dump_json()) == spec


def test_a_half_fraction_states_its_aliasing(data: dict) -> None:
    spec = parse_spec({**data, "factorial": dict(fraction="1/2", generators=["send_hour = coupon * wording"])})
    levels = [v.levels for v in spec.contacted]
    assert len(levels) == 4 and all(v.share == pytest.approx(0.9 / 4) for v in spec.contacted)
    design = design_of(spec)
    code = lambda f, lv: -1 if lv == design.factors[f][0] else 1  # noqa: E731
    assert all(code("send_hour", c["send_hour"]) == code("coupon", c["coupon"]) * code("wording", c["wording"])
               for c in levels)
    assert design.defining_relation == ("I = coupon×wording×send_hour",)
    assert design.aliases["coupon"] == ("wording×send_hour",)
    assert design.aliases["wording×send_hour"] == ("coupon",)


def test_a_quarter_fraction_aliases_main_effects_and_says_so(data: dict) -> None:
    factors = {**data["factors"], "channel": ["sms", "mms"]}
    spec = parse_spec({**data, "factors": factors, "factorial": dict(
        fraction="1/4", generators=["send_hour = coupon * wording", "channel = -coupon * wording"])})
    assert len(spec.contacted) == 4
    design = design_of(spec)
    # I = coupon×wording×send_hour = −coupon×wording×channel, so also I = send_hour×channel: the two
    # hours are sent on different channels, and the report must not tell their effects apart.
    assert len(design.defining_relation) == 3 and "send_hour" in design.aliases["channel"]


def test_the_example_spec_is_a_factorial() -> None:
    spec = load_spec(EXAMPLE)
    assert spec.factors and len(spec.contacted) == 8


@pytest.mark.parametrize("change, field, words", [
    (dict(factors=dict(coupon=[5], send_hour=[10, 20])), "factors", "factor 'coupon' needs at least two levels"),
    (dict(factors=dict(coupon=[5, 5], send_hour=[10, 20])), "factors", "repeats the level 5"),
    (dict(factors=dict(colour=["red", "blue"], coupon=[5, 10])), "factors", "unknown factor 'colour'"),
    (dict(factors=dict(wording=["a", "b"], coupon=[5, 10])), "factors", "table of level = template"),
    (dict(factors=dict(coupon=[1, 2, 3, 4], send_hour=[8, 10, 12, 14], channel=["sms", "mms", "push", "email", "wechat"])),
     "factors", "80 cells is more than 64"),
    (dict(factorial=dict(fraction="1/2")), "factors", "needs one generator per halving"),
    (dict(factorial=dict(name="c{coupon}_{tone}")), "factors", "may use only the factors as placeholders"),
    (dict(factorial=dict(name="c{coupon}")), "variants", "variant names must be unique; repeated: c10, c5"),
    (dict(factors=dict(coupon=[5, 10], send_hour=[10, 23]), factorial=dict(template="回TD退订")),
     "variants[2].send_hour", "quiet hours"),
])
def test_bad_factors_name_the_field(data: dict, change: dict, field: str, words: str) -> None:
    found = problems({**data, **change})
    assert any(f == field and words in m for f, m in found), found
    assert not any("Field required" in m for _, m in found)  # no cells were generated: not a second error


def _written_cells(data: dict) -> dict:
    """The same design with the cells written out as [[variants]] (how a team sets its own shares)."""
    spec = parse_spec(data)
    out = {**data, "variants": [dict(name="holdout", share=0.1, control=True)]}
    for v in spec.contacted:
        out["variants"].append(dict(name=v.name, share=v.share, channel="sms", coupon=int(v.coupon),
                                    template=v.template, send_hour=v.send_hour, levels=dict(v.levels)))
    return out


def test_written_cells_are_accepted_when_they_are_the_design(data: dict) -> None:
    assert parse_spec(_written_cells(data)) == parse_spec(data)


@pytest.mark.parametrize("damage, words", [
    (lambda v: v[1]["levels"].pop("wording"), "cell 'coupon5_lively_10h' has no level of wording"),
    (lambda v: v[1]["levels"].update(coupon=[5, 10]), "got 2 levels of coupon"),
    (lambda v: v[1]["levels"].update(coupon="20"), "'20' is not a level of coupon"),
    (lambda v: v[1].update(coupon=10), "its coupon does not match coupon = 5"),
    (lambda v: (v[1]["levels"].update(send_hour="20"), v[1].update(send_hour=20)), "have the same levels"),
    (lambda v: v[0].update(levels={"coupon": "5"}), "the control 'holdout' has no levels"),
])
def test_bad_cells_name_the_cell_and_the_factor(data: dict, damage, words: str) -> None:
    written = _written_cells(data)
    damage(written["variants"])
    found = problems(written)
    assert any(f.startswith("variants") and words in m for f, m in found), found


def test_a_missing_cell_is_named(data: dict) -> None:
    written = _written_cells(data)
    dropped = written["variants"].pop()
    written["variants"][1]["share"] += dropped["share"]
    [(field, message)] = problems(written)
    assert field == "variants" and "missing coupon=10, wording=professional, send_hour=20" in message


def test_every_generated_message_is_checked(data: dict) -> None:
    data["factors"]["wording"]["lively"] = "【好物商城】亲～{coupon}元红包已到账"  # no opt-out
    found = problems(data)
    assert any(f.startswith("variants[") and "message checks" in m for f, m in found), found
