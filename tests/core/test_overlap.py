"""The overlap verdict of each policy (core.overlap), as a table."""

import pytest

from core.overlap import OverlapPolicy, OverlapVerdict, cancel_subject, overlap_verdict

P, V = OverlapPolicy, OverlapVerdict


@pytest.mark.parametrize(
    ("policy", "in_progress", "buffered", "expected"),
    [
        (P.ALLOW, 3, 2, V.GO),
        (P.SKIP, 0, 0, V.GO),
        (P.SKIP, 1, 0, V.SKIP),
        (P.SKIP, 0, 1, V.SKIP),
        (P.BUFFER_ONE, 1, 0, V.BUFFER),
        (P.BUFFER_ONE, 1, 1, V.SKIP),
        (P.BUFFER_ONE, 0, 1, V.SKIP),
        (P.BUFFER_ALL, 1, 0, V.BUFFER),
        (P.BUFFER_ALL, 1, 5, V.BUFFER),
        (P.BUFFER_ALL, 0, 1, V.BUFFER),
        (P.BUFFER_ALL, 0, 0, V.GO),
        (P.CANCEL_OTHER, 2, 1, V.CANCEL_OTHERS),
        (P.CANCEL_OTHER, 0, 0, V.GO),
    ],
    ids=lambda v: str(v),
)
def test_overlap_verdict(policy, in_progress, buffered, expected):
    assert overlap_verdict(policy, in_progress, buffered) is expected


def test_the_cancel_notice_goes_beside_the_command():
    assert cancel_subject("billing.invoice") == "billing.invoice.cancel"
