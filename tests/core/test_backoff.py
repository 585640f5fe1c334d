import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.backoff import DEFAULT_BACKOFF_CAP_SECONDS, retry_delay_seconds, whole_seconds_ms


@pytest.mark.parametrize(
    "n,base,cap,jitter,expected",
    [
        (1, 10, 3600, 0.0, 10.0),
        (2, 10, 3600, 0.0, 20.0),
        (3, 10, 3600, 0.0, 40.0),
        (9, 10, 3600, 0.0, 2560.0),
        (10, 10, 3600, 0.0, 3600.0),
        (500, 10, 3600, 0.0, 3600.0),
        (10_000, 10, 3600, 0.5, 2700.0),
        (1, 10, 3600, 0.5, 7.5),
        (1, 10, 3600, 0.999, 5.005),
        (1, 10, 3600, 1.0, 5.0),
        (3, 10, 25, 0.0, 25.0),
        (1, 0, 3600, 0.3, 0.0),
        (1, 10, 0, 0.0, 0.0),
    ],
)
def test_table(n, base, cap, jitter, expected):
    assert retry_delay_seconds(n, base, cap, jitter) == pytest.approx(expected)


@pytest.mark.parametrize("args", [(0, 10, 60, 0), (1, -1, 60, 0), (1, 10, -1, 0), (1, 10, 60, -0.1), (1, 10, 60, 1.5)])
def test_rejects(args):
    with pytest.raises(ValueError):
        retry_delay_seconds(*args)


def test_default_cap():
    assert DEFAULT_BACKOFF_CAP_SECONDS == 3600


@given(st.floats(min_value=-10_000, max_value=10_000_000, allow_nan=False))
def test_a_queue_delay_is_rounded_up_to_the_whole_second_never_below_the_ask(delay_ms):
    rounded = whole_seconds_ms(delay_ms)
    assert rounded % 1000 == 0
    assert rounded >= int(delay_ms) and rounded >= 0
    assert rounded < max(0, int(delay_ms)) + 1000
