"""Topic ids on the real broker: the sign that a log started over at the same offsets."""

from __future__ import annotations

from helpers import recreate_topic

from voxledger.config import Settings
from voxledger.topics import LogIdentity, topic_ids


def test_a_topic_created_again_has_a_new_id(pipeline_settings: Settings) -> None:
    settings = pipeline_settings
    raw, redacted = settings.topics.raw, settings.topics.redacted
    logs = LogIdentity(lambda names: topic_ids(settings, names))
    before = topic_ids(settings, [raw.name, redacted.name])
    assert set(before) == {raw.name, redacted.name} and before[raw.name] != before[redacted.name]
    assert logs.started_over([raw.name, redacted.name]) == set()  # first look: nothing known

    recreate_topic(settings, raw.name, raw.partitions)

    assert topic_ids(settings, [raw.name])[raw.name] != before[raw.name]
    assert logs.started_over([raw.name, redacted.name]) == {raw.name}
    assert logs.started_over([raw.name, redacted.name]) == set()  # told once


def test_a_broker_that_cannot_answer_changes_nothing_known() -> None:
    answers = iter([{"raw": "id-1"}, ConnectionError("broker down"), {"raw": "id-2"}])

    def lookup(names: list[str]) -> dict[str, str]:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    logs = LogIdentity(lookup)
    assert logs.started_over(["raw"]) == set()
    assert logs.started_over(["raw"]) == set()  # a warning; the known id stays
    assert logs.started_over(["raw"]) == {"raw"}
