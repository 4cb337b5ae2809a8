import pytest

from modelpress.benchmarks.profile_served import top_frames

COLLAPSED = """\
main (a.py:1);serve (b.py:2);decode (c.py:3) 6
main (a.py:1);serve (b.py:2);run (d.py:4) 3
main (a.py:1);idle (e.py:5) 1
not a sample line
"""


def test_top_frames_own_and_inclusive_shares():
    own, inclusive = top_frames(COLLAPSED)
    assert own[0] == ("decode (c.py:3)", pytest.approx(0.6))
    assert dict(own)["idle (e.py:5)"] == pytest.approx(0.1)
    assert dict(inclusive)["main (a.py:1)"] == pytest.approx(1.0)
    assert dict(inclusive)["serve (b.py:2)"] == pytest.approx(0.9)
