"""due_at = one working day after creation, with China's holidays, make-up days and the fallback."""

from __future__ import annotations

import datetime as dt

import pytest

from models.errors import IdvError
from models.reasons import Reason
from review_queue.workdays import CHINA_TZ, WorkCalendar


def bj(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s).replace(tzinfo=CHINA_TZ)


@pytest.mark.parametrize(
    ("created", "due"),
    [
        ("2026-12-03 10:00", "2026-12-04 10:00"),  # Thursday -> Friday
        ("2026-12-04 15:00", "2026-12-07 15:00"),  # Friday -> across the weekend -> Monday
        ("2026-12-05 11:00", "2026-12-08 00:00"),  # Saturday: the clock starts Monday, due at its end
        ("2026-09-30 10:00", "2026-10-08 10:00"),  # across National Day (1-7 Oct 2026)
        ("2026-10-03 09:00", "2026-10-09 00:00"),  # created inside the holiday
        ("2026-09-18 15:00", "2026-09-20 15:00"),  # Friday -> make-up working Sunday 20 Sep 2026
        ("2026-09-20 09:30", "2026-09-21 09:30"),  # created on the make-up working Sunday
        ("2026-01-02 12:00", "2026-01-05 00:00"),  # New Year holiday: the make-up Sunday 4 Jan is the working day
    ],
)
def test_due_with_chinese_calendar(created, due):
    d = WorkCalendar().add_working_days(bj(created))
    assert d.due_at.astimezone(CHINA_TZ) == bj(due)
    assert d.due_at.tzinfo is dt.UTC and d.fallback is False


def test_beyond_the_data_falls_back_to_weekends_and_says_so():
    d = WorkCalendar().add_working_days(bj("2027-01-29 10:00"))  # a Friday in a year the package lacks
    assert d.due_at.astimezone(CHINA_TZ) == bj("2027-02-01 10:00")
    assert d.fallback is True


def test_operator_file_extends_the_calendar(tmp_path):
    f = tmp_path / "holidays.toml"
    # illustrative dates for the test, not an official schedule
    f.write_text('years = [2027]\nholidays = ["2027-01-01", "2027-02-01"]\nworkdays = ["2027-01-31"]\n')
    cal = WorkCalendar.load(f)
    d = cal.add_working_days(bj("2027-01-29 10:00"))  # Friday -> Sunday 31 Jan is a make-up day
    assert d.due_at.astimezone(CHINA_TZ) == bj("2027-01-31 10:00") and d.fallback is False
    d = cal.add_working_days(bj("2027-01-31 10:00"))  # Sunday (work) -> Monday is a holiday -> Tuesday
    assert d.due_at.astimezone(CHINA_TZ) == bj("2027-02-02 10:00") and d.fallback is False
    d = cal.add_working_days(bj("2026-12-31 10:00"))  # 2026 from the package, 1 Jan 2027 from the file
    assert d.due_at.astimezone(CHINA_TZ) == bj("2027-01-04 10:00") and d.fallback is False
    assert cal.add_working_days(bj("2028-03-03 10:00")).fallback is True


@pytest.mark.parametrize(
    "text",
    ['holidays = ["2027-01-01"]', 'years = [2027]\nholidays = ["2027-13-01"]',
     'years = [2027]\nholidays = ["2028-01-01"]', 'years = [2027]\nholidays = ["2027-01-01"]\nworkdays = ["2027-01-01"]',
     "years = ["],
)
def test_bad_holiday_file_is_refused(tmp_path, text):
    f = tmp_path / "h.toml"
    f.write_text(text)
    with pytest.raises(IdvError) as ei:
        WorkCalendar.load(f)
    assert ei.value.code is Reason.REVIEW_HOLIDAY_FILE_INVALID


def test_naive_datetime_refused():
    with pytest.raises(ValueError):
        WorkCalendar().add_working_days(dt.datetime(2026, 12, 3, 10))
