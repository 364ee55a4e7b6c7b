"""GFS retention: the newest snapshot of each of the newest N calendar periods in the policy's time zone, over a
year of synthetic snapshots, across DST changes; the first rule that keeps a snapshot is the one named."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from tests.fixtures.tools import REPO_ROOT
from vmbackup.model.retention import NOT_YET, SnapshotInfo, Verdict, retention_verdicts
from vmbackup.model.retention_spec import Retention

BERLIN, NEW_YORK = "Europe/Berlin", "America/New_York"
DISK = "zones/europe-west3-a/disks/db"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def snap(when: datetime, disk: str = DISK, **fields: str) -> SnapshotInfo:
    return SnapshotInfo(name=f"s-{when:%Y%m%dt%H%M%S}", disk=disk, status="READY", created=when, **fields)  # type: ignore[arg-type]


def daily_at_two(tz: str, first: str, days: int) -> list[SnapshotInfo]:
    """One snapshot a day at 02:00 local time."""
    start = datetime.fromisoformat(first).replace(hour=2, tzinfo=ZoneInfo(tz))
    return [snap((start + timedelta(days=d)).astimezone(UTC)) for d in range(days)]


def verdicts(snaps: list[SnapshotInfo], now: datetime, tz: str = BERLIN, **rules: int) -> list[Verdict]:
    return retention_verdicts(snaps, Retention(**rules), now, tz)  # type: ignore[arg-type]


def kept(found: list[Verdict], tz: str = BERLIN) -> dict[str, str]:
    """{local date-time: rule} of every kept snapshot."""
    zone = ZoneInfo(tz)
    return {f"{v.snapshot.created.astimezone(zone):%Y-%m-%d %H:%M}": v.rule for v in found if v.keep}


YEAR = daily_at_two(BERLIN, "2025-01-01", 365)
NEW_YEAR = at("2026-01-01T12:00:00+00:00")


def test_daily_keeps_the_newest_of_each_of_the_last_n_days() -> None:
    assert list(kept(verdicts(YEAR, NEW_YEAR, daily=7))) == [f"2025-12-{d} 02:00" for d in range(31, 24, -1)]


def test_weekly_counts_iso_weeks_across_the_new_year() -> None:
    # 2025-12-31 is in ISO week 2026-W01; the Sundays close 2025-W52, W51, W50.
    found = verdicts(YEAR, NEW_YEAR, weekly=4)
    assert kept(found) == {f"2025-12-{d} 02:00": "weekly" for d in ("31", "28", "21", "14")}
    assert [v.period for v in found if v.keep] == ["2026-W01", "2025-W52", "2025-W51", "2025-W50"]


def test_monthly_keeps_each_months_last_snapshot() -> None:
    found = kept(verdicts(YEAR, NEW_YEAR, monthly=3))
    assert found == {"2025-12-31 02:00": "monthly", "2025-11-30 02:00": "monthly", "2025-10-31 02:00": "monthly"}


def test_yearly_counts_only_years_that_hold_a_snapshot() -> None:
    assert kept(verdicts(YEAR, NEW_YEAR, yearly=3)) == {"2025-12-31 02:00": "yearly"}


def test_the_rungs_together_keep_what_any_keeps_named_by_the_first() -> None:
    found = kept(verdicts(YEAR, NEW_YEAR, daily=7, weekly=4, monthly=12, yearly=1))
    assert len(found) == 7 + 2 + 11  # 7 days; weeks 51 and 50; the ends of January to November
    assert found["2025-12-31 02:00"] == "daily"  # wanted by every rung: the first names it
    assert found["2025-12-21 02:00"] == found["2025-12-14 02:00"] == "weekly"
    assert found["2025-01-31 02:00"] == "monthly"


def test_count_comes_before_the_rungs() -> None:
    found = kept(verdicts(YEAR, NEW_YEAR, count=2, daily=3))
    assert found == {"2025-12-31 02:00": "count", "2025-12-30 02:00": "count", "2025-12-29 02:00": "daily"}


def test_a_year_of_hourly_snapshots() -> None:
    start = at("2025-01-01T00:30:00+00:00")
    hourly = [snap(start + timedelta(hours=h)) for h in range(365 * 24)]
    now = hourly[-1].created + timedelta(minutes=5)
    found = verdicts(hourly, now, "Etc/UTC", hourly=24, daily=7, weekly=4, monthly=12)
    rules = [v.rule for v in found if v.keep]
    assert rules.count("hourly") == 24  # all of 31 December
    assert rules.count("daily") == 6  # 25-30 December
    assert rules.count("weekly") == 2  # weeks 51 and 50 (2026-W01 and 2025-W52 are kept already)
    assert rules.count("monthly") == 11  # the ends of January to November
    assert len(rules) == 24 + 6 + 2 + 11


def test_the_hour_repeated_when_berlin_leaves_summer_time_is_two_hours() -> None:
    # 2025-10-26: 02:00-03:00 CEST (00:00-01:00 UTC), then 02:00-03:00 CET (01:00-02:00 UTC).
    snaps = [snap(at(t)) for t in ("2025-10-26T00:10Z", "2025-10-26T00:50Z", "2025-10-26T01:10Z", "2025-10-26T01:50Z")]
    found = verdicts(snaps, at("2025-10-26T03:00Z"), hourly=2)
    assert {v.snapshot.created.strftime("%H:%M") for v in found if v.keep} == {"00:50", "01:50"}
    assert [v.period for v in found if v.keep] == ["2025-10-26 02:00+0100", "2025-10-26 02:00+0200"]


def test_the_25_hour_day_is_one_day() -> None:
    # 2025-10-26 in Berlin runs from 22:00 UTC on the 25th to 23:00 UTC on the 26th.
    snaps = [snap(at(t)) for t in ("2025-10-25T21:30Z", "2025-10-25T22:30Z", "2025-10-26T22:30Z", "2025-10-26T23:30Z")]
    found = kept(verdicts(snaps, at("2025-10-27T00:00Z"), daily=2))
    assert found == {"2025-10-27 00:30": "daily", "2025-10-26 23:30": "daily"}


def test_days_are_the_policys_not_utcs() -> None:
    snaps = [snap(at(t)) for t in ("2025-10-25T21:30Z", "2025-10-25T22:30Z")]  # 23:30 and 00:30 in Berlin
    assert len(kept(verdicts(snaps, at("2025-10-26T00:00Z"), daily=2))) == 2
    assert len(kept(verdicts(snaps, at("2025-10-26T00:00Z"), tz="Etc/UTC", daily=2), "Etc/UTC")) == 1


def test_the_23_hour_day_of_new_york_is_one_day() -> None:
    # 2025-03-09 in New York: 00:00 EST (05:00 UTC) to 24:00 EDT (04:00 UTC on the 10th).
    snaps = [snap(at(t)) for t in ("2025-03-09T05:30Z", "2025-03-10T03:30Z", "2025-03-10T04:30Z")]
    found = kept(verdicts(snaps, at("2025-03-10T12:00Z"), tz=NEW_YORK, daily=2), NEW_YORK)
    assert found == {"2025-03-10 00:30": "daily", "2025-03-09 23:30": "daily"}


def test_new_yorks_missing_hour_leaves_no_gap_in_hourly() -> None:
    # 2025-03-09 02:00 EST does not exist: 01:30 EST (06:30 UTC) is followed by 03:30 EDT (07:30 UTC).
    snaps = [snap(at(t)) for t in ("2025-03-09T05:30Z", "2025-03-09T06:30Z", "2025-03-09T07:30Z")]
    found = verdicts(snaps, at("2025-03-09T08:00Z"), tz=NEW_YORK, hourly=2)
    assert [v.period for v in found if v.keep] == ["2025-03-09 03:00-0400", "2025-03-09 01:00-0500"]


def test_new_yorks_repeated_hour_is_two_hours() -> None:
    # 2025-11-02: 01:00-02:00 EDT (05:00-06:00 UTC), then 01:00-02:00 EST (06:00-07:00 UTC).
    snaps = [snap(at(t)) for t in ("2025-11-02T05:30Z", "2025-11-02T06:30Z")]
    found = verdicts(snaps, at("2025-11-02T07:00Z"), tz=NEW_YORK, hourly=2)
    assert [v.period for v in found if v.keep] == ["2025-11-02 01:00-0500", "2025-11-02 01:00-0400"]


def test_a_run_across_midnight_counts_for_one_day_on_every_disk() -> None:
    tz = ZoneInfo(BERLIN)
    run = {"instance": "db", "run": "r2"}
    late = datetime(2025, 6, 1, 23, 59, 59, tzinfo=tz).astimezone(UTC)
    snaps = [
        snap(late - timedelta(days=1), disk="d1", instance="db", run="r1"),
        snap(late - timedelta(days=1), disk="d2", instance="db", run="r1"),
        snap(late, disk="d1", **run),
        snap(late + timedelta(seconds=2), disk="d2", **run),  # 00:00:01 on 2 June
    ]
    found = verdicts(snaps, late + timedelta(hours=1), daily=1, keepLastSuccessful=1)
    assert {(v.snapshot.disk, v.snapshot.run, v.rule) for v in found if v.keep} == {
        ("d1", "r2", "daily"),
        ("d2", "r2", "daily"),
    }


def test_a_snapshot_newer_than_the_evaluation_time_is_kept_and_not_counted() -> None:
    found = verdicts(YEAR, at("2025-12-30T12:00:00+00:00"), daily=2)
    assert found[0].rule == NOT_YET
    assert kept(found) == {"2025-12-31 02:00": NOT_YET, "2025-12-30 02:00": "daily", "2025-12-29 02:00": "daily"}


def test_the_documented_worked_example_is_what_the_code_keeps() -> None:
    """docs/retention.md's table: daily 02:00 backups in Berlin since 2025-01-01, evaluated 2026-03-10 12:00."""
    text = (REPO_ROOT / "docs" / "retention.md").read_text()
    example = text.split("## Worked example", 1)[1].split("## ", 1)[0]
    rows = [line.strip("|").split("|") for line in example.splitlines() if line.startswith("| ") and ":00 |" in line]
    documented = {cells[0].strip()[4:]: (cells[1].strip(), cells[2].strip()) for cells in rows}
    snaps = daily_at_two(BERLIN, "2025-01-01", 433)
    now = datetime(2026, 3, 10, 12, 0, tzinfo=ZoneInfo(BERLIN))
    found = verdicts(snaps, now, count=3, daily=7, weekly=4, monthly=6, yearly=2)
    zone = ZoneInfo(BERLIN)
    computed = {f"{v.snapshot.created.astimezone(zone):%Y-%m-%d %H:%M}": (v.rule, v.period) for v in found if v.keep}
    assert computed == documented
    assert f"Of the {len(snaps)} snapshots, {len(computed)} stay" in " ".join(text.split())
