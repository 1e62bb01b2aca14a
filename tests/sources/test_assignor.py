"""The sticky assignor's dealing: valid, balanced, and sticky where balance allows."""

from __future__ import annotations

from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.structs import TopicPartition
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.sources.assignor import StickyAssignor, _held, deal

TOPIC = "events"


@st.composite
def groups(draw: st.DrawFn) -> tuple[list[TopicPartition], dict[str, list[TopicPartition]]]:
    n = draw(st.integers(0, 24))
    partitions = [TopicPartition(TOPIC, p) for p in range(n)]
    names = draw(st.lists(st.sampled_from("abcdefgh"), min_size=1, max_size=6, unique=True))
    claimable = [*partitions, TopicPartition(TOPIC, n + 5)]  # and one that no longer exists
    held = {m: draw(st.lists(st.sampled_from(claimable), max_size=10)) for m in names}
    return partitions, held


@settings(max_examples=300, deadline=None)
@given(groups())
def test_every_partition_goes_to_one_member_and_shares_differ_by_at_most_one(
    group: tuple[list[TopicPartition], dict[str, list[TopicPartition]]],
) -> None:
    partitions, held = group
    plan = deal(partitions, held)
    dealt = [tp for tps in plan.values() for tp in tps]
    assert sorted(dealt) == sorted(partitions)
    sizes = [len(tps) for tps in plan.values()]
    assert max(sizes) - min(sizes) <= 1
    claims = {tp: sum(tp in set(h) for h in held.values()) for tp in partitions}
    for member, tps in plan.items():
        kept = {tp for tp in set(held[member]) if claims.get(tp) == 1}
        # a member gives up what it holds only beyond its share
        assert len(kept & set(tps)) == min(len(kept), len(tps))


def test_a_member_leaving_moves_only_its_partitions_and_coming_back_takes_its_share() -> None:
    tps = [TopicPartition(TOPIC, p) for p in range(6)]
    first = deal(tps, {"a": [], "b": []})
    without_b = deal(tps, {"a": first["a"]})
    assert set(first["a"]) <= set(without_b["a"]), "a keeps what it had"
    again = deal(tps, {"a": without_b["a"], "b": []})
    assert len(again["a"]) == len(again["b"]) == 3
    assert set(again["a"]) < set(without_b["a"]), "b's share comes out of a's, the rest stays"


def test_the_assignor_reports_what_it_was_given_in_its_metadata() -> None:
    assignor = StickyAssignor()
    assignor.on_assignment(ConsumerProtocolMemberAssignment(0, [(TOPIC, [2, 0])], b""))
    meta = assignor.metadata([TOPIC])
    assert meta.subscription == [TOPIC]
    assert deal([TopicPartition(TOPIC, p) for p in range(4)], {"me": _held(meta.user_data), "other": []})["me"] == [
        TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 2)]  # fmt: skip

