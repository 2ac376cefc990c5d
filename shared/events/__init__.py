"""Kaizen's event vocabulary: the only language the services speak to each other.

Every service imports this package; it imports no service. ``envelope`` wraps every
event in CloudEvents 1.0 attributes, one module per stream holds the frozen event
models, ``codec`` is the only code that touches bytes, ``upcasters`` keeps old events
decodable and ``topics`` names the topics and how records are keyed.
"""

from shared.events.base import Event, derive_id
from shared.events.envelope import Envelope
from shared.events.registry import EVENT_TYPES, event_class

__all__ = ["EVENT_TYPES", "Envelope", "Event", "derive_id", "event_class"]
