"""The contact policy: who may be messaged, how often, and who is never messaged at all.

Operators run several recall campaigns at once. The policy is enforced where it matters, when
customers are assigned (mutual exclusion, global holdout) and when each day's send list is built
(opt-outs, quiet hours, frequency caps, holiday caps), across every experiment in the database. A
customer held back stays assigned (the analysis is intention-to-treat) and each touch held back is
recorded in ``contact_holds`` with why.

Opt-outs always hold: an unsubscribe or a complaint (a complaint is treated as an opt-out: someone
who reported a message as spam is never messaged again) of any date, imported before a touch's list
is built, suppresses that touch and every later one, of every experiment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import NamedTuple

GLOBAL_HOLDOUT_SALT = "recall-lab-global-holdout"
DORMANT_AFTER_DAYS = 30

# Chinese public holidays (local dates, first day and length) on which customers get at most
# `holiday_daily_cap` touches a day.
HOLIDAY_RANGES = [
    (date(2026, 1, 1), 3), (date(2026, 2, 15), 9), (date(2026, 4, 4), 3), (date(2026, 5, 1), 5),
    (date(2026, 6, 19), 3), (date(2026, 10, 1), 7), (date(2027, 1, 1), 3), (date(2027, 2, 6), 9),
]
DEFAULT_HOLIDAYS = frozenset(first + timedelta(days=d) for first, length in HOLIDAY_RANGES for d in range(length))


class Touch(NamedTuple):
    """A send already scheduled for a customer: when (naive UTC), which local day, which channel."""

    at: datetime
    local_day: date
    channel: str


class HoldReason:
    """Why an assigned customer was not contacted (values stored in ``contact_holds.reason``)."""

    UNSUBSCRIBED = "unsubscribed"
    COMPLAINED = "complained"  # a complaint suppresses like an unsubscribe
    QUIET_HOURS = "quiet_hours"  # its send time would fall in the quiet hours (a design that predates the check)
    DORMANT_CAP = "dormant_cap"
    ACTIVE_CAP = "active_cap"
    HOLIDAY_CAP = "holiday_cap"
    CHANNEL_CAP = "channel_cap"


@dataclass(frozen=True)
class FrequencyCap:
    """At most ``max_sends`` touches in any ``days``-day window around a send."""

    max_sends: int
    days: int

    @classmethod
    def parse(cls, text: str, source: str) -> FrequencyCap:
        try:
            sends, days = (int(part) for part in text.split("/"))
        except ValueError:
            raise ValueError(f"{source}: expected SENDS/DAYS such as 2/7, got {text!r}") from None
        if sends < 0 or days < 1:
            raise ValueError(f"{source}: SENDS must be ≥ 0 and DAYS ≥ 1, got {text!r}")
        return cls(sends, days)


@dataclass(frozen=True)
class ContactPolicy:
    """Defaults: dormant ≤ 2 per week, active ≤ 4 per month, ≤ 2 per day on holidays, no global holdout."""

    dormant_cap: FrequencyCap = FrequencyCap(2, 7)
    active_cap: FrequencyCap = FrequencyCap(4, 30)
    holiday_daily_cap: int = 2
    holidays: frozenset[date] = DEFAULT_HOLIDAYS
    channel_caps: Mapping[str, FrequencyCap] = field(default_factory=dict)  # e.g. phone: 1 per 30 days
    global_holdout_share: float = 0.0
    global_holdout_salt: str = GLOBAL_HOLDOUT_SALT

    @classmethod
    def from_env(cls) -> ContactPolicy:
        """``RECALL_CAP_DORMANT=2/7``, ``RECALL_CAP_ACTIVE=4/30``, ``RECALL_CAP_HOLIDAY=2``,
        ``RECALL_CAP_CHANNELS=phone=1/30,mms=1/7``, ``RECALL_GLOBAL_HOLDOUT=0.02`` override the defaults."""
        env = os.environ
        policy = cls()
        share = float(env.get("RECALL_GLOBAL_HOLDOUT", "0") or 0)
        if not 0 <= share < 1:
            raise ValueError(f"RECALL_GLOBAL_HOLDOUT: a share in [0, 1), got {share}")
        return cls(
            dormant_cap=FrequencyCap.parse(env["RECALL_CAP_DORMANT"], "RECALL_CAP_DORMANT")
            if env.get("RECALL_CAP_DORMANT") else policy.dormant_cap,
            active_cap=FrequencyCap.parse(env["RECALL_CAP_ACTIVE"], "RECALL_CAP_ACTIVE")
            if env.get("RECALL_CAP_ACTIVE") else policy.active_cap,
            holiday_daily_cap=int(env.get("RECALL_CAP_HOLIDAY", policy.holiday_daily_cap)),
            channel_caps=_channel_caps(env.get("RECALL_CAP_CHANNELS", "")),
            global_holdout_share=share,
        )

    def cap_for(self, last_active_at: datetime | None, at: datetime) -> tuple[FrequencyCap, str]:
        if last_active_at is None or (at - last_active_at).days >= DORMANT_AFTER_DAYS:
            return self.dormant_cap, HoldReason.DORMANT_CAP
        return self.active_cap, HoldReason.ACTIVE_CAP

    def hold_reason(self, at: datetime, at_local_day: date, channel: str, last_active_at: datetime | None,
                    other_sends: Sequence[Touch]) -> str | None:
        """Why a send at ``at`` (naive UTC) on ``channel`` must be held back given the customer's other
        sends, or None when it may go out."""
        cap, reason = self.cap_for(last_active_at, at)
        if _in_window(other_sends, at, cap) >= cap.max_sends:
            return reason
        channel_cap = self.channel_caps.get(channel)
        if channel_cap and _in_window([t for t in other_sends if t.channel == channel], at, channel_cap) >= \
                channel_cap.max_sends:
            return HoldReason.CHANNEL_CAP
        if at_local_day in self.holidays and sum(1 for t in other_sends if t.local_day == at_local_day) >= \
                self.holiday_daily_cap:
            return HoldReason.HOLIDAY_CAP
        return None


def _in_window(sends: Sequence[Touch], at: datetime, cap: FrequencyCap) -> int:
    window = timedelta(days=cap.days)
    return sum(1 for t in sends if at - window < t.at < at + window)


def _channel_caps(text: str) -> dict[str, FrequencyCap]:
    caps = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        channel, _, cap = item.partition("=")
        caps[channel.strip()] = FrequencyCap.parse(cap, f"RECALL_CAP_CHANNELS ({channel.strip()})")
    return caps
