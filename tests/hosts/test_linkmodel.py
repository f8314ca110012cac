"""The link model the switch's relay applies: delay floor, jitter bound, order, bandwidth,
loss as retransmission delay. Pure: an injected clock and generator, no sockets."""

from __future__ import annotations

import random

import pytest

from tests.hosts.linkmodel import MAX_BACKOFFS, MSS, LinkSpec, Stream, Wire, lost_segments_delay
from tests.hosts.relay import host_of


def test_a_chunk_arrives_after_the_delay_plus_at_most_the_jitter() -> None:
    spec = LinkSpec.from_rtt(100, jitter_ms=20)
    rng = random.Random(1)
    wire = Wire()
    for i in range(200):
        now = i * 1.0  # far apart: no ordering effect
        at = Stream().departure(now, 100, spec, wire, rng)
        assert now + 0.05 <= at <= now + 0.05 + 0.02


def test_bytes_of_one_connection_never_overtake_each_other() -> None:
    spec = LinkSpec(delay_s=0.05, jitter_s=0.2)
    rng, wire, stream = random.Random(7), Wire(), Stream()
    departures = [stream.departure(i * 0.001, 10, spec, wire, rng) for i in range(500)]
    assert departures == sorted(departures)


def test_the_bandwidth_cap_serializes_every_connection_on_the_wire() -> None:
    spec = LinkSpec(rate_bps=8_000_000)  # 1 MB/s
    rng, wire = random.Random(0), Wire()
    first, second = Stream(), Stream()
    a = first.departure(0.0, 500_000, spec, wire, rng)
    b = second.departure(0.0, 500_000, spec, wire, rng)  # another connection, same wire
    assert a == pytest.approx(0.5)
    assert b == pytest.approx(1.0)
    # an idle wire does not bank credit for later
    assert Stream().departure(10.0, 1_000, spec, wire, rng) == pytest.approx(10.001)


def test_loss_costs_a_retransmission_timeout_on_about_the_expected_share() -> None:
    spec = LinkSpec(loss=0.01, rto_s=0.2)
    rng = random.Random(3)
    one_segment = [lost_segments_delay(MSS, spec, rng) for _ in range(20_000)]
    late = [d for d in one_segment if d > 0]
    assert 0.007 < len(late) / len(one_segment) < 0.013
    assert min(late) == pytest.approx(0.2)  # one RTO; a lost retransmission doubles it
    assert all(any(d == pytest.approx(x) for x in (0.2, 0.6, 1.4)) for d in late)
    # a chunk of 10 segments is late about 1 - 0.99**10 ~ 9.6 % of the time
    ten = [lost_segments_delay(10 * MSS, spec, rng) for _ in range(20_000)]
    assert 0.08 < sum(d > 0 for d in ten) / len(ten) < 0.11


def test_no_loss_no_jitter_means_exactly_the_delay() -> None:
    spec = LinkSpec(delay_s=0.025)
    assert Stream().departure(3.0, 64_000, spec, Wire(), random.Random()) == 3.025


def test_specs_reject_nonsense_and_survive_the_control_socket() -> None:
    with pytest.raises(ValueError):
        LinkSpec(loss=1.0)
    with pytest.raises(ValueError):
        LinkSpec(delay_s=-1)
    spec = LinkSpec.from_rtt(120, jitter_ms=5, loss=0.01, rate_mbit=10)
    assert LinkSpec.from_json(spec.to_json()) == spec


def test_the_relay_only_knows_addresses_of_the_test_bed() -> None:
    assert host_of("10.213.7.2", "10.213.") == 7
    assert host_of("10.213.7.1", "10.213.") is None  # the switch itself
    assert host_of("10.214.7.2", "10.213.") is None  # a NATted host's private address
    assert host_of("192.168.1.2", "10.213.") is None


def test_a_lost_segment_waits_a_bounded_time_for_every_draw() -> None:
    """MAX_BACKOFFS: even at 99 % loss, no chunk waits more than 0.2 s * (2**7 - 1)."""
    spec = LinkSpec(loss=0.99)
    rng = random.Random(7)
    waits = [lost_segments_delay(MSS, spec, rng) for _ in range(2_000)]
    cap = spec.rto_s * (2 ** (MAX_BACKOFFS + 1) - 1)
    assert max(waits) == pytest.approx(cap)  # reached, never passed
    assert min(waits) >= 0.0
