"""The local test clock (``usercredits.adapters.clock``): the state file, its helpers, ``build_clock`` and the settings
that refuse it in AWS Lambda."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from usercredits.adapters import clock as clock_module
from usercredits.adapters.clock import (
    MAX_TIME,
    ClockState,
    LocalClock,
    LocalClockError,
    advance_clock,
    build_clock,
    format_time,
    freeze_clock,
    parse_time,
    read_clock,
    read_state,
    set_clock,
    write_state,
)
from usercredits.kernel.clock import SystemClock
from usercredits.settings import SETTINGS_BY_FUNCTION, ConsumptionSettings, LocalClockSettings

T0 = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
#: Slack for comparisons against the real time (the test itself takes time).
SLACK = timedelta(seconds=5)
IN_LAMBDA = "AWS_Lambda_python3.13"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "clock.json"


def assert_utc(moment: datetime) -> None:
    assert moment.tzinfo is not None
    assert moment.utcoffset() == timedelta(0)


def assert_close(moment: datetime, expected: datetime) -> None:
    assert abs(moment - expected) < SLACK, (moment, expected)


# --- reading --------------------------------------------------------------------------------------------------------


def test_a_missing_file_reads_as_the_real_time(path: Path) -> None:
    # Given no state file / When the clock is read
    now = LocalClock(path).now()
    # Then it shows the real time, aware UTC
    assert_utc(now)
    assert_close(now, datetime.now(UTC))
    assert read_state(path) == ClockState()


def test_an_empty_file_reads_as_offset_zero(path: Path) -> None:
    path.write_text("  \n")
    assert read_state(path) == ClockState()
    assert_close(LocalClock(path).now(), datetime.now(UTC))


def test_a_frozen_clock_stands_still(path: Path) -> None:
    # Given a clock frozen at T0
    assert freeze_clock(path, T0) == T0
    clock = LocalClock(path)
    # When it is read twice / Then it shows T0 both times, aware UTC
    assert clock.now() == T0 == clock.now()
    assert_utc(clock.now())
    assert json.loads(path.read_text()) == {"frozenAt": "2031-05-06T07:08:09Z"}


def test_a_flowing_clock_is_the_real_time_plus_the_offset(path: Path) -> None:
    write_state(path, ClockState(offset_seconds=3600.5))
    now = LocalClock(path).now()
    assert_utc(now)
    assert_close(now, datetime.now(UTC) + timedelta(seconds=3600.5))
    assert json.loads(path.read_text()) == {"offsetSeconds": 3600.5}


def test_a_hand_written_offset_file_is_read(path: Path) -> None:
    path.write_text('{"offsetSeconds": -86400}')
    assert_close(read_clock(path), datetime.now(UTC) - timedelta(days=1))


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        '{"offsetSeconds": "10"}',
        '{"offsetSeconds": true}',
        '{"offsetSeconds": NaN}',
        '{"frozenAt": "2031-05-06T07:08:09"}',
        '{"frozenAt": 5}',
        '{"offsetSeconds": 1, "frozenAt": "2031-05-06T07:08:09Z"}',
    ],
)
def test_an_invalid_file_is_an_error_not_the_real_time(path: Path, content: str) -> None:
    # Given a broken state file / Then reading it fails loudly (a silent fallback would hide the mistake)
    path.write_text(content)
    with pytest.raises(LocalClockError, match="invalid local clock file"):
        LocalClock(path).now()


def test_the_file_is_read_again_only_when_it_changed(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a clock that read its file once
    freeze_clock(path, T0)
    clock = LocalClock(path)
    assert clock.now() == T0
    opened: list[str] = []
    real_open = open

    def counting_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(clock_module, "open", counting_open, raising=False)
    # When it is read again without a change / Then the file is not opened (one os.stat only)
    assert clock.now() == T0
    assert opened == []
    # When the file changes, even to a state of the same size written at once / Then the new state is read
    later = T0 + timedelta(seconds=1)
    freeze_clock(path, later)
    assert clock.now() == later
    assert len(opened) == 1


def test_rapid_same_size_changes_are_all_seen(path: Path) -> None:
    # Given a reader and writes faster than the filesystem's timestamp granularity, all of the same size
    clock = LocalClock(path)
    for second in range(20):
        moment = T0 + timedelta(seconds=second)
        freeze_clock(path, moment)
        # Then the reader sees each one
        assert clock.now() == moment


def test_a_file_removed_after_being_read_reads_as_the_real_time(path: Path) -> None:
    freeze_clock(path, T0)
    clock = LocalClock(path)
    assert clock.now() == T0
    path.unlink()
    assert_close(clock.now(), datetime.now(UTC))


# --- moving it ------------------------------------------------------------------------------------------------------


def test_advance_adds_to_the_offset_of_a_flowing_clock(path: Path) -> None:
    # Given a flowing clock (no file yet)
    # When it is advanced twice
    advance_clock(path, 3600)
    shown = advance_clock(path, 0.5)
    # Then the offsets add up and the clock keeps flowing
    state = read_state(path)
    assert state == ClockState(offset_seconds=3600.5)
    assert_utc(shown)
    assert_close(shown, datetime.now(UTC) + timedelta(seconds=3600.5))


def test_advance_moves_a_frozen_clock_and_keeps_it_frozen(path: Path) -> None:
    freeze_clock(path, T0)
    assert advance_clock(path, 7200) == T0 + timedelta(hours=2)
    assert read_state(path) == ClockState(frozen_at=T0 + timedelta(hours=2))
    assert advance_clock(path, 0) == T0 + timedelta(hours=2)


@pytest.mark.parametrize("seconds", [-1, -0.001, float("nan"), float("inf"), True, "10", None])
def test_advance_refuses_anything_but_a_finite_number_not_below_zero(path: Path, seconds: Any) -> None:
    freeze_clock(path, T0)
    with pytest.raises(LocalClockError, match="advanceSeconds"):
        advance_clock(path, seconds)
    assert read_clock(path) == T0


def test_advance_refuses_to_move_past_the_latest_time(path: Path) -> None:
    freeze_clock(path, MAX_TIME - timedelta(seconds=10))
    with pytest.raises(LocalClockError, match="cannot move past"):
        advance_clock(path, 11)
    with pytest.raises(LocalClockError, match="cannot move past"):
        advance_clock(path, 1e300)
    assert read_clock(path) == MAX_TIME - timedelta(seconds=10)


def test_set_shows_the_time_now_then_flows_with_the_real_time(path: Path) -> None:
    # Given a clock frozen at T0
    freeze_clock(path, T0)
    # When it is set to a time given in another timezone
    target = datetime(2040, 1, 1, 12, 0, tzinfo=timezone(timedelta(hours=2)))
    shown = set_clock(path, target)
    # Then it shows that time (in UTC), and it is an offset from the real clock again, not frozen
    assert_utc(shown)
    assert_close(shown, datetime(2040, 1, 1, 10, 0, tzinfo=UTC))
    state = read_state(path)
    assert state.frozen_at is None
    assert_close(datetime.now(UTC) + timedelta(seconds=state.offset_seconds), datetime(2040, 1, 1, 10, 0, tzinfo=UTC))
    # And an advance adds to that offset
    assert_close(advance_clock(path, 60), datetime(2040, 1, 1, 10, 1, tzinfo=UTC))


def test_set_may_go_back_but_refuses_a_naive_or_out_of_range_time(path: Path) -> None:
    assert_close(set_clock(path, datetime(2001, 1, 1, tzinfo=UTC)), datetime(2001, 1, 1, tzinfo=UTC))
    with pytest.raises(LocalClockError, match="timezone"):
        set_clock(path, datetime(2030, 1, 1))  # noqa: DTZ001 - the point of the test
    with pytest.raises(LocalClockError, match="from 1970"):
        set_clock(path, datetime(9001, 1, 1, tzinfo=UTC))


def test_freeze_without_a_time_stops_the_clock_where_it_is(path: Path) -> None:
    write_state(path, ClockState(offset_seconds=86400))
    frozen = freeze_clock(path)
    assert_close(frozen, datetime.now(UTC) + timedelta(days=1))
    assert read_clock(path) == frozen


def test_writes_are_atomic_and_leave_no_temporary_file(path: Path) -> None:
    for second in range(5):
        advance_clock(path, second)
    assert os.listdir(path.parent) == [path.name]


# --- times ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2031-05-06T07:08:09Z", T0),
        ("2031-05-06T09:08:09+02:00", T0),
        ("2031-05-06T07:08:09.250000+00:00", T0 + timedelta(milliseconds=250)),
        ("9000-12-31T23:59:59Z", datetime(9000, 12, 31, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_parse_time_reads_an_aware_iso_time_into_utc(text: str, expected: datetime) -> None:
    parsed = parse_time(text)
    assert parsed == expected
    assert_utc(parsed)


@pytest.mark.parametrize(
    "text",
    ["2031-05-06T07:08:09", "tomorrow", "", "9001-01-01T00:00:00Z", "9999-12-31T23:00:00-05:00", "1969-12-31T23:59Z"],
)
def test_parse_time_refuses_naive_unreadable_or_out_of_range_times(text: str) -> None:
    with pytest.raises(LocalClockError):
        parse_time(text)


def test_format_time_is_utc_with_a_z() -> None:
    assert format_time(datetime(2031, 5, 6, 9, 8, 9, tzinfo=timezone(timedelta(hours=2)))) == "2031-05-06T07:08:09Z"


# --- build_clock and the settings ------------------------------------------------------------------------------------


def consumption_settings(**env: str) -> ConsumptionSettings:
    return ConsumptionSettings.model_validate({**os.environ, **env})


def test_build_clock_is_the_real_clock_without_a_clock_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOCAL_CLOCK_FILE", raising=False)
    assert isinstance(build_clock(consumption_settings()), SystemClock)


def test_build_clock_is_the_local_clock_with_a_clock_file(path: Path) -> None:
    freeze_clock(path, T0)
    clock = build_clock(consumption_settings(LOCAL_CLOCK_FILE=str(path)))
    assert isinstance(clock, LocalClock)
    assert clock.now() == T0


CLOCKED = sorted(folder for folder, model in SETTINGS_BY_FUNCTION.items() if issubclass(model, LocalClockSettings))


def test_every_function_with_a_clock_can_read_the_local_clock() -> None:
    # Every function but the event publisher (which reads no time) takes LOCAL_CLOCK_FILE
    assert CLOCKED == ["consumption", "customers", "expiry_scan", "ordering", "stripe_webhook"]


@pytest.mark.parametrize("folder", CLOCKED)
def test_the_settings_refuse_the_local_clock_in_aws_lambda(folder: str, path: Path) -> None:
    # Given the environment of a function running in AWS Lambda with a local clock file
    env = {**os.environ, "LOCAL_CLOCK_FILE": str(path), "AWS_EXECUTION_ENV": IN_LAMBDA}
    # When its settings are read / Then they fail, naming the variable (the function refuses to start)
    with pytest.raises(ValidationError, match="LOCAL_CLOCK_FILE"):
        SETTINGS_BY_FUNCTION[folder].model_validate(env)


@pytest.mark.parametrize("folder", CLOCKED)
def test_the_settings_accept_the_local_clock_outside_lambda_and_lambda_without_it(folder: str, path: Path) -> None:
    model = SETTINGS_BY_FUNCTION[folder]
    local = model.model_validate({**os.environ, "LOCAL_CLOCK_FILE": str(path)})
    assert isinstance(local, LocalClockSettings)
    assert str(path) == local.LOCAL_CLOCK_FILE
    assert not local.AWS_EXECUTION_ENV
    deployed = model.model_validate(
        {k: v for k, v in os.environ.items() if k != "LOCAL_CLOCK_FILE"} | {"AWS_EXECUTION_ENV": IN_LAMBDA}
    )
    assert isinstance(deployed, LocalClockSettings)
    assert not deployed.LOCAL_CLOCK_FILE
    assert IN_LAMBDA == deployed.AWS_EXECUTION_ENV
