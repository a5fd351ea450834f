"""Settings read from the environment: where the database is and which clock users live by."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATABASE_PATH = PROJECT_ROOT / "recall.db"
DEFAULT_TIMEZONE = "Asia/Shanghai"
DEFAULT_CURRENCY = "¥"


@dataclass(frozen=True)
class Settings:
    database_url: str
    timezone: ZoneInfo
    currency: str = DEFAULT_CURRENCY


def database_url(explicit: str | None = None) -> str:
    """The database URL: the ``--db`` option, else ``RECALL_DATABASE_URL``, else a SQLite file."""
    return explicit or os.environ.get("RECALL_DATABASE_URL") or f"sqlite:///{DEFAULT_DATABASE_PATH}"


def to_stored_utc(at: datetime) -> datetime:
    """How times are stored: naive UTC. A naive ``at`` is local time in the configured time zone."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=settings().timezone)
    return at.astimezone(UTC).replace(tzinfo=None)


def settings(db: str | None = None) -> Settings:
    return Settings(
        database_url=database_url(db),
        timezone=ZoneInfo(os.environ.get("RECALL_TIMEZONE", DEFAULT_TIMEZONE)),
        currency=os.environ.get("RECALL_CURRENCY", DEFAULT_CURRENCY),
    )
