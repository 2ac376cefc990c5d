"""Records as envelope v1 wrote them (before the CloudEvents-conforming attribute names)."""

from __future__ import annotations

import json

from shared.events import codec
from shared.events.envelope import Envelope
from shared.events.upcasters import ENVELOPE_V1_NAMES

#: The v1 encoder's attributes, in its order: every one written, null or not.
V1_ORDER = (
    "specversion",
    "id",
    "type",
    "source",
    "subject",
    "time",
    "datacontenttype",
    "task_id",
    "job_id",
    "correlation_id",
    "causation_id",
    "data",
)


def v1_value(envelope: Envelope) -> bytes:
    """``envelope`` as the v1 encoder wrote it: snake_case names, nulls included, no traceparent."""
    v2 = json.loads(codec.encode(envelope))
    return json.dumps({name: v2.get(ENVELOPE_V1_NAMES.get(name, name)) for name in V1_ORDER}).encode()
