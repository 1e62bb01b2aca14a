"""A sticky partition assignor: over a rebalance, partitions stay with the instance that
held them where balance allows, so their state in memory is reused instead of restored.

aiokafka rebalances eagerly (every member gives up everything, then gets its new share),
so stickiness is what keeps a rebalance cheap. aiokafka's own ``StickyPartitionAssignor``
keeps its state on the class (shared by every consumer in a process) and never learns
the generation it reports, which leaves groups in rebalances that never complete
(aio-libs/aiokafka issues 1175 and 1176); this one is small, has its state on the
instance (one per consumer) and decides from what each member says it holds:

* each member's metadata carries the partitions it holds now;
* a partition claimed by two members (one of them came back after being given up for
  dead) belongs to neither claim;
* topic by topic (the events' topics and the internal one are different work), every
  member gets ``n // m`` partitions, and ``n % m`` of them one more, those with the
  fewest partitions of the topics dealt before first, then those that hold the most;
  each keeps what it holds up to its share, and the rest are dealt out in order to
  members with room.

It is the only protocol the daemon offers, so every member of its group must offer it
(another consumer in the group fails to join with ``InconsistentGroupProtocolError``).
Offering round robin as well, for members that only know that, was tried: two members
starting together then rebalanced without end. Members with different subscriptions (a
``topic_pattern`` seen at different moments) are assigned round robin, whose rules for
that case are aiokafka's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import orjson
from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)
from aiokafka.structs import TopicPartition

VERSION = 0


class StickyAssignor(AbstractPartitionAssignor):  # type: ignore[misc]
    name = "exfil-monitor-sticky"
    version = VERSION

    def __init__(self) -> None:
        self.held: list[TopicPartition] = []  # this consumer's partitions, as last assigned

    def metadata(self, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
        held = orjson.dumps({"held": [[tp.topic, tp.partition] for tp in self.held]})
        return ConsumerProtocolMemberMetadata(self.version, sorted(topics), held)

    def on_assignment(self, assignment: ConsumerProtocolMemberAssignment) -> None:
        self.held = sorted(assignment.partitions())

    def assign(self, cluster: ClusterMetadata,
               members: Mapping[str, ConsumerProtocolMemberMetadata]) -> dict[str, ConsumerProtocolMemberAssignment]:  # fmt: skip
        subscriptions = {tuple(sorted(m.subscription)) for m in members.values()}
        if len(subscriptions) != 1:
            return RoundRobinPartitionAssignor.assign(cluster, members)  # type: ignore[no-any-return]
        held = {member: _held(m.user_data) for member, m in members.items()}
        plan: dict[str, list[TopicPartition]] = {member: [] for member in members}
        for topic in next(iter(subscriptions)):  # topic by topic: each one's work is spread evenly
            partitions = [TopicPartition(topic, p) for p in cluster.partitions_for_topic(topic) or ()]
            dealt = deal(partitions, {m: [tp for tp in tps if tp.topic == topic] for m, tps in held.items()},
                         {m: len(tps) for m, tps in plan.items()})  # fmt: skip
            for member, tps in dealt.items():
                plan[member] += tps
        out = {}
        for member, tps in plan.items():
            by_topic: dict[str, list[int]] = {}
            for tp in tps:
                by_topic.setdefault(tp.topic, []).append(tp.partition)
            out[member] = ConsumerProtocolMemberAssignment(self.version, sorted(by_topic.items()), b"")
        return out


def deal(partitions: Iterable[TopicPartition], held: Mapping[str, Iterable[TopicPartition]],
         load: Mapping[str, int] | None = None) -> dict[str, list[TopicPartition]]:  # fmt: skip
    """Every partition to exactly one member, shares within one of each other, each
    member keeping what it holds up to its share (see the module's docstring). ``load``:
    what each member got of other topics; the one-more shares go to the least loaded first,
    so that over all topics, too, shares stay within one of each other."""
    load = load or {}
    everything = sorted(set(partitions))
    members = sorted(held)
    if not members:
        return {}
    claims: dict[TopicPartition, int] = {}
    for member in members:
        for tp in set(held[member]):
            claims[tp] = claims.get(tp, 0) + 1
    valid = set(everything)
    owned = {m: sorted(tp for tp in set(held[m]) if tp in valid and claims[tp] == 1) for m in members}
    base, extra = divmod(len(everything), len(members))
    by_holding = sorted(members, key=lambda m: (load.get(m, 0), -len(owned[m]), m))
    share = {m: base + (1 if i < extra else 0) for i, m in enumerate(by_holding)}
    plan = {m: owned[m][: share[m]] for m in members}
    taken = {tp for tps in plan.values() for tp in tps}
    pool = [tp for tp in everything if tp not in taken]  # as long as the room left, in all
    for m in members:
        room = share[m] - len(plan[m])
        plan[m].extend(pool[:room])
        del pool[:room]
    return {m: sorted(tps) for m, tps in plan.items()}


def _held(user_data: bytes) -> list[TopicPartition]:
    """What a member says it holds; anything unreadable (another version) holds nothing."""
    try:
        data = orjson.loads(user_data or b"{}")
        return [TopicPartition(str(t), int(p)) for t, p in data.get("held", [])]
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        return []
