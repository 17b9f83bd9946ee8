"""Bit-identity assertions shared by the restart (test_io) and distribution (test_distributed) tests."""
import numpy as np

#: per-packet state arrays of a Simulation that a split or restarted run must reproduce exactly
from packets.state import NAMES as STATE  # noqa: E402  (the library's one schema)


def assert_same_run(a, b):
    """Bit-identical record times, fields, per-batch sums and counts; equal status counts and packet-steps."""
    assert a.layout == b.layout
    for name in ("times", "E", "_sums", "counts"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.shape == y.shape, name
        assert np.array_equal(x, y), f"{name} differs: max |diff| = {np.max(np.abs(x - y))}"
    assert a.status_counts == b.status_counts
    assert a.meta["packet_steps"] == b.meta["packet_steps"]


def assert_same_state(s1, s2):
    """Bit-identical final packet state (every array of STATE)."""
    for name in STATE:
        assert np.array_equal(getattr(s1, name), getattr(s2, name)), f"final state {name} differs"
