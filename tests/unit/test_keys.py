"""Key components are percent-encoded where they go (CONTRACT, Keys): each stays one component."""

from __future__ import annotations

from stream_app import alerts
from stream_app.keys import kafka_key, redis_key
from stream_app.sinks.redis import history_key, index_key, score_key
from stream_app.snapshot import rolling_key


def test_a_slash_in_a_kafka_key_component_is_encoded_and_a_colon_is_not():
    assert kafka_key("acme", "agent", "team/alice", "15m") == "acme/agent/team%2Falice/15m"
    assert kafka_key("a:b", "x") == "a:b/x"


def test_a_colon_in_a_redis_key_component_is_encoded_and_a_slash_is_not():
    assert redis_key("cx:score", "acme", "agent", "team:alice", "15m") == \
        "cx:score:acme:agent:team%3Aalice:15m"
    assert redis_key("cx:scores", "a/b") == "cx:scores:a/b"


def test_a_percent_sign_is_encoded_first_so_that_encoded_text_is_never_read_as_a_separator():
    assert kafka_key("100%2F") == "100%252F"
    assert redis_key("cx:score", "50%3A") == "cx:score:50%253A"


def test_every_published_key_encodes_its_components():
    assert rolling_key("t/1", "queue", "q/2", "15m") == "t%2F1/queue/q%2F2/15m"
    assert score_key("t:1", "queue", "q:2", "15m") == "cx:score:t%3A1:queue:q%3A2:15m"
    assert history_key("t", "channel", "a:b", "1h") == "cx:history:t:channel:a%3Ab:1h"
    assert index_key("t:1") == "cx:scores:t%3A1"
    event = {"rule": "r/1", "tenant": "acme", "dimension": "agent", "key": "team/alice"}
    assert alerts.alert_key(event) == "r%2F1/acme/agent/team%2Falice"
