"""UK time: timestamps are stored in UTC; the business date is the date in London."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")


def to_london(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(LONDON)


def business_date(moment_utc: dt.datetime) -> dt.date:
    """The UK calendar date of a UTC moment (23:30 UTC on a summer day is the next day)."""
    return to_london(moment_utc).date()


def start_of_day_utc(day: dt.date) -> dt.datetime:
    """Naive UTC moment at which a UK calendar day starts (for filtering stored timestamps)."""
    return dt.datetime.combine(day, dt.time(), tzinfo=LONDON).astimezone(dt.UTC).replace(tzinfo=None)
