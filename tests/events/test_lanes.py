"""Kept-alive lanes per receiver origin: reused across rounds, bounded, trimmed."""

from __future__ import annotations

from cartera.events.delivery import Lanes, origin_of


def test_origin_is_scheme_and_host_with_port() -> None:
    assert origin_of("https://Hooks.Example.com/a?b=1") == ("https", "hooks.example.com")
    assert origin_of("http://127.0.0.1:8080/x") == ("http", "127.0.0.1:8080")
    assert origin_of("https://h.example/a") != origin_of("http://h.example/a")


async def test_lanes_are_reused_bounded_per_origin_and_trimmed() -> None:
    lanes = Lanes(per_origin=3, max_origins=2)
    a = ("https", "a.example")
    first = lanes.take(a, 2)
    assert len(first) == 2
    again = lanes.take(a, 10)  # at most three to one origin; the open ones come first
    assert len(again) == 3 and again[:2] == first
    assert lanes.take(a, 0) == again[:1]  # always at least one
    lanes.take(("https", "b.example"), 1)
    lanes.take(("https", "c.example"), 1)
    await lanes.trim()  # three origins, two kept: the least recently used goes
    assert lanes.take(a, 1)[0] is not first[0]
    await lanes.close()
