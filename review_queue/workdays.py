"""Working-day SLA: `due_at` = one working day after creation, in China's calendar.

Public holidays and make-up working days come from `chinese-calendar` (data up to 2026) and an
operator holiday file for later years (TOML: `years = [2027]`, `holidays = [...]`, `workdays = [...]`,
ISO dates). A day in a year neither covers is judged by weekends only, and the result says so
(`fallback=True`), so the case and the queue page can show that the deadline is approximate.

One working day = 24 hours of clock time counted only on working days (Asia/Shanghai): Friday 15:00
falls due Monday 15:00; a case created on a Saturday falls due at the end of the next working day.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import chinese_calendar

from models.errors import IdvError, InputError
from models.files import read_text_file
from models.reasons import Reason

CHINA_TZ = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class Due:
    due_at: dt.datetime  # timezone-aware, UTC
    fallback: bool  # some day on the way was judged by weekends only


@dataclass(frozen=True)
class WorkCalendar:
    """Immutable; build once at start (reads the operator file once)."""

    extra_years: frozenset[int] = frozenset()
    extra_holidays: frozenset[dt.date] = frozenset()
    extra_workdays: frozenset[dt.date] = frozenset()

    @classmethod
    def load(cls, holiday_file: Path | None = None) -> "WorkCalendar":
        if holiday_file is None:
            return cls()
        p = Path(holiday_file)
        try:
            raw = tomllib.loads(read_text_file(p, what="holiday file", max_bytes=1024 * 1024))
            years = frozenset(int(y) for y in raw.get("years", []))
            hol = frozenset(dt.date.fromisoformat(str(d)) for d in raw.get("holidays", []))
            work = frozenset(dt.date.fromisoformat(str(d)) for d in raw.get("workdays", []))
        except InputError as e:  # missing, a folder, a device, too big, not UTF-8
            raise IdvError(Reason.REVIEW_HOLIDAY_FILE_INVALID, e.detail, status_code=500) from None
        except (OSError, tomllib.TOMLDecodeError, ValueError, TypeError) as e:
            raise IdvError(Reason.REVIEW_HOLIDAY_FILE_INVALID, f"holiday file {p.name}: {e}", status_code=500) from None
        if not years:
            raise IdvError(Reason.REVIEW_HOLIDAY_FILE_INVALID, f"holiday file {p.name}: `years` is empty", status_code=500)
        stray = sorted(str(d) for d in hol | work if d.year not in years)
        if stray or hol & work:
            raise IdvError(
                Reason.REVIEW_HOLIDAY_FILE_INVALID,
                f"holiday file {p.name}: dates outside `years` {stray} or both holiday and workday "
                f"{sorted(str(d) for d in hol & work)}",
                status_code=500,
            )
        return cls(years, hol, work)

    def is_workday(self, day: dt.date) -> tuple[bool, bool]:
        """(working day?, judged by the weekend fallback?)."""
        if day.year in self.extra_years:  # the operator's file wins over the package for its years
            if day in self.extra_holidays:
                return False, False
            if day in self.extra_workdays:
                return True, False
            return day.weekday() < 5, False
        try:
            return bool(chinese_calendar.is_workday(day)), False
        except NotImplementedError:
            return day.weekday() < 5, True

    def add_working_days(self, start: dt.datetime, days: int = 1) -> Due:
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        local = start.astimezone(CHINA_TZ)
        remaining = dt.timedelta(days=days)
        fallback = False
        cursor = local
        for _ in range(days * 400):  # bounded: no calendar has a year without working days
            work, fb = self.is_workday(cursor.date())
            fallback |= fb
            next_midnight = dt.datetime.combine(cursor.date() + dt.timedelta(days=1), dt.time(), CHINA_TZ)
            if work:
                span = next_midnight - cursor
                if span >= remaining:
                    return Due((cursor + remaining).astimezone(dt.UTC), fallback)
                remaining -= span
            cursor = next_midnight
        raise RuntimeError("no working day found within 400 days")  # unreachable with sane data


def due_at(created_at: dt.datetime, calendar: WorkCalendar | None = None) -> Due:
    return (calendar or WorkCalendar()).add_working_days(created_at, 1)


__all__ = ["CHINA_TZ", "Due", "WorkCalendar", "due_at"]
