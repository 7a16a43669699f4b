"""Event-time windows (stream_app/windows.py) against CONTRACT.md "Windows".

Every expected value is worked out by hand; times are epoch milliseconds.
"""

from __future__ import annotations

import pytest

from stream_app.windows import (
    WindowSpec,
    bucket_retention_ms,
    bucket_start,
    bucket_widths,
    parse_duration_ms,
    parse_windows,
)

S = 1_000
M = 60_000
H = 3_600_000
D = 86_400_000

MAY_1 = 1_714_521_600_000  # 2024-05-01T00:00:00Z
TEN = 1_714_557_600_000  # 2024-05-01T10:00:00Z = MAY_1 + 10 h

DEFAULT = "15m:15m:1m,1h:1h:5m,1d:1d:1d"
W15 = WindowSpec("15m", 15 * M, 1 * M)
W1H = WindowSpec("1h", 1 * H, 5 * M)
W1D = WindowSpec("1d", 1 * D, 1 * D)


# --- parse_duration_ms -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("250ms", 250),
        ("90s", 90_000),
        ("15m", 900_000),
        ("1h", 3_600_000),
        ("2h", 7_200_000),
        ("1d", 86_400_000),
        ("1.5h", 5_400_000),
        ("0.5s", 500),
        (" 15m ", 900_000),
        ("15 m", 900_000),
    ],
)
def test_parse_duration_units(text, expected):
    assert parse_duration_ms(text) == expected


@pytest.mark.parametrize(("text", "expected"), [("90", 90_000), ("0", 0), ("1.25", 1_250)])
def test_parse_duration_bare_number_text_is_seconds(text, expected):
    assert parse_duration_ms(text) == expected


@pytest.mark.parametrize(("value", "expected"), [(90, 90_000), (1.5, 1_500), (0, 0)])
def test_parse_duration_numeric_value_is_seconds(value, expected):
    assert parse_duration_ms(value) == expected


@pytest.mark.parametrize("text", ["", "  ", "abc", "15x", "-5s", "m", "15mm", "1h30m", "15M", "1e3", "5 s m"])
def test_parse_duration_bad_text_raises_value_error(text):
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration_ms(text)


# --- parse_windows -----------------------------------------------------------------------------


def test_parse_windows_defaults_give_three_specs_in_order():
    assert parse_windows(DEFAULT) == (
        WindowSpec("15m", 900_000, 60_000),
        WindowSpec("1h", 3_600_000, 300_000),
        WindowSpec("1d", 86_400_000, 86_400_000),
    )


def test_parse_windows_name_is_free_text_and_whitespace_is_ignored():
    assert parse_windows(" short : 10m : 2m , long:2h:30m ,") == (
        WindowSpec("short", 600_000, 120_000),
        WindowSpec("long", 7_200_000, 1_800_000),
    )


def test_parse_windows_step_equal_to_size_is_tumbling():
    (spec,) = parse_windows("day:1d:1d")
    assert spec.size_ms == spec.step_ms == 86_400_000


def test_parse_windows_rejects_step_greater_than_size():
    with pytest.raises(ValueError, match="'bad'"):
        parse_windows("bad:1m:15m")


@pytest.mark.parametrize("text", ["z:0m:0m", "z:15m:0s", "z:0s:1s"])
def test_parse_windows_rejects_zero_size_or_step(text):
    with pytest.raises(ValueError, match="'z'"):
        parse_windows(text)


def test_parse_windows_rejects_duplicate_names():
    with pytest.raises(ValueError, match="distinct"):
        parse_windows("15m:15m:1m,15m:30m:1m")


@pytest.mark.parametrize("part", ["15m:15m", "15m:15m:1m:1m", "15m", "x:15m:1q", "x:fifteen:1m"])
def test_parse_windows_rejects_malformed_part(part):
    with pytest.raises(ValueError):
        parse_windows(f"1h:1h:5m,{part}")


def test_parse_windows_malformed_part_message_names_the_part():
    with pytest.raises(ValueError, match="'15m:15m'"):
        parse_windows("15m:15m")


@pytest.mark.parametrize("text", ["", " , ", ","])
def test_parse_windows_rejects_empty_list(text):
    with pytest.raises(ValueError):
        parse_windows(text)


# --- WindowSpec.bucket_ms ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (W15, 1 * M),  # gcd(15m, 1m)
        (W1H, 5 * M),  # gcd(60m, 5m)
        (W1D, 1 * D),  # tumbling: the window itself
        (WindowSpec("odd", 10 * M, 4 * M), 2 * M),  # gcd(10m, 4m)
        (WindowSpec("co", 7 * M, 3 * M), 1 * M),  # coprime minutes
        (WindowSpec("mixed", 90 * S, 1 * M), 30 * S),  # gcd(90s, 60s)
    ],
)
def test_bucket_ms_is_gcd_of_size_and_step(spec, expected):
    assert spec.bucket_ms == expected


# --- WindowSpec.rolling ------------------------------------------------------------------------


def test_rolling_ends_at_first_step_boundary_after_watermark():
    # 10:00:30 → the next minute boundary is 10:01; 15 minutes back is 09:46.
    assert W15.rolling(TEN + 30 * S) == (TEN - 14 * M, TEN + 1 * M)


def test_rolling_watermark_on_boundary_gives_window_ending_at_next_boundary():
    # [09:45, 10:00) does not hold 10:00 (half-open), so the rolling view is [09:46, 10:01).
    assert W15.rolling(TEN) == (TEN - 14 * M, TEN + 1 * M)


def test_rolling_watermark_one_ms_before_boundary_ends_at_that_boundary():
    assert W15.rolling(TEN - 1) == (TEN - 15 * M, TEN)


def test_rolling_window_holds_the_watermark_half_open():
    for watermark in (TEN - 1, TEN, TEN + 1, TEN + 59_999, TEN + 60_000):
        for spec in (W15, W1H, W1D):
            start, end = spec.rolling(watermark)
            assert start <= watermark < end
            assert end - start == spec.size_ms
            assert end % spec.step_ms == 0


def test_rolling_hopping_hour_with_five_minute_step():
    # 10:07:30 → next 5-minute boundary 10:10; one hour back is 09:10.
    assert W1H.rolling(TEN + 7 * M + 30 * S) == (TEN - 50 * M, TEN + 10 * M)


def test_rolling_tumbling_day_is_the_calendar_day_utc():
    assert W1D.rolling(TEN) == (MAY_1, MAY_1 + D)
    # Exactly midnight belongs to the day that starts there.
    assert W1D.rolling(MAY_1) == (MAY_1, MAY_1 + D)
    assert W1D.rolling(MAY_1 - 1) == (MAY_1 - D, MAY_1)


def test_rolling_at_epoch_zero():
    assert W15.rolling(0) == (-14 * M, 1 * M)


# --- WindowSpec.ends_between -------------------------------------------------------------------

FAR_PAST = -(10**15)
FAR_FUTURE = 10**15


def test_ends_between_one_minute_bucket_in_15m_windows_gives_15_ends():
    # Bucket [10:00, 10:01) is held by the windows ending 10:01 ([09:46,10:01)) ... 10:15 ([10:00,10:15)).
    ends = W15.ends_between(FAR_PAST, FAR_FUTURE, TEN, TEN + M)
    assert ends == [TEN + k * M for k in range(1, 16)]
    assert len(ends) == 15


def test_ends_between_excludes_windows_that_only_touch_the_span():
    ends = W15.ends_between(FAR_PAST, FAR_FUTURE, TEN, TEN + M)
    assert TEN not in ends  # [09:45, 10:00) ends where the span starts
    assert TEN + 16 * M not in ends  # [10:01, 10:16) starts where the span ends


def test_ends_between_after_is_exclusive_and_upto_inclusive():
    # Only the ends in (10:05, 10:10]: 10:06, 10:07, 10:08, 10:09, 10:10.
    ends = W15.ends_between(TEN + 5 * M, TEN + 10 * M, TEN, TEN + M)
    assert ends == [TEN + 6 * M, TEN + 7 * M, TEN + 8 * M, TEN + 9 * M, TEN + 10 * M]


def test_ends_between_after_off_boundary_rounds_up_to_next_step():
    ends = W15.ends_between(TEN + 5 * M + 1, TEN + 7 * M - 1, TEN, TEN + M)
    assert ends == [TEN + 6 * M]


def test_ends_between_empty_when_after_not_before_upto():
    assert W15.ends_between(TEN + 10 * M, TEN + 10 * M, TEN, TEN + M) == []
    assert W15.ends_between(TEN + 11 * M, TEN + 10 * M, TEN, TEN + M) == []


def test_ends_between_empty_when_range_misses_the_span():
    # Windows holding [10:00, 10:01) end in 10:01..10:15; none of them ends in (10:15, 11:00].
    assert W15.ends_between(TEN + 15 * M, TEN + 60 * M, TEN, TEN + M) == []
    # ... and none in (09:00, 10:00].
    assert W15.ends_between(TEN - 60 * M, TEN, TEN, TEN + M) == []


def test_ends_between_five_minute_bucket_in_hour_windows_gives_12_ends():
    # Bucket [10:00, 10:05) of 1h/5m: ends 10:05, 10:10, ..., 11:00.
    ends = W1H.ends_between(FAR_PAST, FAR_FUTURE, TEN, TEN + 5 * M)
    assert ends == [TEN + k * 5 * M for k in range(1, 13)]


def test_ends_between_wider_span_covers_more_windows():
    # Span [10:00, 10:03) in 15m/1m windows: ends 10:01 ... 10:17 (17 windows).
    ends = W15.ends_between(FAR_PAST, FAR_FUTURE, TEN, TEN + 3 * M)
    assert ends == [TEN + k * M for k in range(1, 18)]


def test_ends_between_tumbling_day_gives_one_end():
    assert W1D.ends_between(FAR_PAST, FAR_FUTURE, MAY_1, MAY_1 + D) == [MAY_1 + D]
    # A single millisecond at 10:00 is still only in the one day.
    assert W1D.ends_between(FAR_PAST, FAR_FUTURE, TEN, TEN + 1) == [MAY_1 + D]


def test_ends_between_single_ms_span_on_boundary():
    # The instant 10:00 is in [09:46,10:01) ... [10:00,10:15): ends 10:01 .. 10:15.
    assert W15.ends_between(FAR_PAST, FAR_FUTURE, TEN, TEN + 1) == [TEN + k * M for k in range(1, 16)]


# --- bucket_start ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_ms", "width", "expected"),
    [
        (TEN + 30 * S, M, TEN),
        (TEN, M, TEN),  # on a boundary: itself
        (TEN + M - 1, M, TEN),
        (TEN + 7 * M + 30 * S, 5 * M, TEN + 5 * M),
        (TEN + 30 * S, D, MAY_1),  # UTC day
        (MAY_1 - 1, D, MAY_1 - D),
        (0, M, 0),
        (59_999, M, 0),
        (60_000, M, 60_000),
    ],
)
def test_bucket_start_aligns_to_epoch(event_ms, width, expected):
    assert bucket_start(event_ms, width) == expected


def test_bucket_start_before_epoch_rounds_down_not_toward_zero():
    assert bucket_start(-1, M) == -M
    assert bucket_start(-M, M) == -M


# --- bucket_widths / bucket_retention_ms -------------------------------------------------------


def test_bucket_widths_defaults_sorted():
    assert bucket_widths(parse_windows(DEFAULT)) == (60_000, 300_000, 86_400_000)


def test_bucket_widths_are_distinct_and_sorted():
    specs = parse_windows("day:1d:1d,a:15m:1m,b:30m:1m,c:1h:5m,d:10m:5m")
    assert bucket_widths(specs) == (60_000, 300_000, 86_400_000)


def test_bucket_retention_is_largest_size_sharing_the_width():
    specs = parse_windows("a:15m:1m,b:30m:1m,c:1h:5m,d:2h:5m,day:1d:1d")
    assert bucket_retention_ms(specs, 60_000) == 1_800_000  # max(15m, 30m)
    assert bucket_retention_ms(specs, 300_000) == 7_200_000  # max(1h, 2h)
    assert bucket_retention_ms(specs, 86_400_000) == 86_400_000


def test_bucket_retention_defaults():
    specs = parse_windows(DEFAULT)
    assert bucket_retention_ms(specs, 60_000) == 900_000
    assert bucket_retention_ms(specs, 300_000) == 3_600_000
    assert bucket_retention_ms(specs, 86_400_000) == 86_400_000
