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



class _Cluster:
    def __init__(self, topics: dict[str, int]) -> None:
        self.topics = topics

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(self.topics[topic]))


@settings(max_examples=100, deadline=None)
@given(topics=st.lists(st.integers(1, 7), min_size=1, max_size=7), members=st.integers(1, 5))
def test_topics_are_dealt_each_evenly_and_over_all_evenly_too(topics: list[int], members: int) -> None:
    """The events' topics and the internal one: each spread over the members, and the
    one-more shares of each topic going to whoever has fewest so far."""
    names = {f"t{i}": n for i, n in enumerate(topics)}
    meta = StickyAssignor().metadata(list(names))
    plan = StickyAssignor().assign(_Cluster(names), {f"m{i}": meta for i in range(members)})  # type: ignore[arg-type]
    totals = []
    for assignment in plan.values():
        got = dict(assignment.assignment)
        totals.append(sum(len(ps) for ps in got.values()))
        for topic, n in names.items():
            assert n // members <= len(got.get(topic, [])) <= -(-n // members), topic
    assert max(totals) - min(totals) <= 1
    assert sum(totals) == sum(topics)
