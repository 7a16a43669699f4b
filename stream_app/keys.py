"""Key components (CONTRACT, Keys): a tenant, key value or window may hold the separator of the key it
goes into, so each component is percent-encoded there — ``/`` in Kafka keys, ``:`` in Redis keys, and
``%`` in both — and ``team/alice`` stays one component. The JSON documents carry the values as they are.
"""

from __future__ import annotations


def kafka_component(text: str) -> str:
    return text.replace("%", "%25").replace("/", "%2F")


def redis_component(text: str) -> str:
    return text.replace("%", "%25").replace(":", "%3A")


def kafka_key(*components: str) -> str:
    """``a/b/c`` of the encoded components."""
    return "/".join(kafka_component(c) for c in components)


def redis_key(prefix: str, *components: str) -> str:
    """``prefix:a:b:c`` of the encoded components (the prefix is the product's own, such as ``cx:score``)."""
    return ":".join((prefix, *(redis_component(c) for c in components)))
