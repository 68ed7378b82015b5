"""Create and describe VoxLedger's topics; each is created explicitly with its partition count."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException, TopicCollection, Uuid
from confluent_kafka.admin import AdminClient, NewTopic

from voxledger.config import Settings, TopicSpec
from voxledger.errors import BrokerError, TopicError
from voxledger.kafka import client_config

log = logging.getLogger("voxledger.topics")
NO_TOPIC_ID = str(Uuid(0, 0))  # what a broker without topic ids (Kafka < 2.8) answers


@dataclass(frozen=True)
class TopicState:
    name: str
    partitions: int | None  # None: the topic does not exist
    created: bool = False


def admin_client(settings: Settings) -> AdminClient:
    # Probes of a broker that may be down: the caller reports failure, librdkafka stays quiet.
    return AdminClient(client_config(settings, **{"socket.timeout.ms": 5000, "log_level": 0}))


def list_topic_partitions(settings: Settings, timeout: float = 5.0) -> dict[str, int]:
    """Every topic on the broker with its partition count; BrokerError when it does not answer."""
    try:
        metadata = admin_client(settings).list_topics(timeout=timeout)
    except KafkaException as exc:
        raise BrokerError(
            f"Kafka at {client_config(settings)['bootstrap.servers']} "
            f"does not answer: {exc.args[0].str()}"
        ) from None
    return {name: len(topic.partitions) for name, topic in metadata.topics.items()}


def ensure_topics(settings: Settings, timeout: float = 10.0) -> list[TopicState]:
    """Create every configured topic that is missing; fail if one exists with other partitions."""
    existing = list_topic_partitions(settings, timeout)
    specs = settings.topics.all()
    missing = [spec for spec in specs if spec.name not in existing]
    if missing:
        _create(settings, missing, timeout)
    states = []
    for spec in specs:
        if spec.name in existing and existing[spec.name] != spec.partitions:
            raise TopicError(
                f"topic {spec.name} has {existing[spec.name]} partitions, "
                f"the configuration says {spec.partitions}"
            )
        states.append(TopicState(spec.name, spec.partitions, created=spec in missing))
    return states


def _create(settings: Settings, specs: list[TopicSpec], timeout: float) -> None:
    new_topics = [
        NewTopic(
            spec.name,
            num_partitions=spec.partitions,
            replication_factor=settings.topics.replication_factor,
            config={"retention.ms": str(spec.retention_ms)} if spec.retention_ms else {},
        )
        for spec in specs
    ]
    admin = admin_client(settings)  # must outlive the futures, or librdkafka cancels them
    futures = admin.create_topics(new_topics, request_timeout=timeout)
    for name, future in futures.items():
        try:
            future.result(timeout)
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.code() != KafkaError.TOPIC_ALREADY_EXISTS:  # a concurrent creator won
                raise TopicError(f"cannot create topic {name}: {error.str()}") from None


def describe_topics(settings: Settings) -> list[TopicState]:
    """The configured topics as the broker has them now."""
    existing = list_topic_partitions(settings)
    return [TopicState(spec.name, existing.get(spec.name)) for spec in settings.topics.all()]


def topic_ids(settings: Settings, names: Iterable[str], timeout: float = 5.0) -> dict[str, str]:
    """Each topic's id (KIP-516), which a topic created again gets anew, as does every topic
    of a restarted memory-only broker: the one way to tell a new log at the same offsets."""
    admin = admin_client(settings)  # must outlive the futures, or librdkafka cancels them
    futures = admin.describe_topics(TopicCollection(sorted(set(names))), request_timeout=timeout)
    ids = {name: str(future.result(timeout).topic_id) for name, future in futures.items()}
    return {name: topic_id for name, topic_id in ids.items() if topic_id != NO_TOPIC_ID}


class LogIdentity:
    """The topic ids a consumer has read under, to tell when one of its logs started over."""

    def __init__(self, lookup: Callable[[list[str]], dict[str, str]]) -> None:
        self.lookup = lookup
        self.known: dict[str, str] = {}

    def started_over(self, names: Iterable[str]) -> set[str]:
        """The topics among `names` whose id changed since the last look (none the first
        time, or when the broker cannot say: a warning, and the known ids are kept)."""
        try:
            current = self.lookup(sorted(set(names)))
        except Exception as exc:  # the consumer goes on; the next assignment looks again
            log.warning("cannot look up the ids of %s: %s", ", ".join(sorted(set(names))), exc)
            return set()
        changed = {name for name, id_ in current.items() if self.known.get(name, id_) != id_}
        self.known.update(current)
        return changed
