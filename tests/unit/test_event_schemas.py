"""The published JSON Schemas match the models, and real events validate against them."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.events import EVENT_TYPES
from shared.events.envelope import Envelope
from shared.events.schemas import envelope_schema, render_all
from tests.support.strategies import envelopes

DOCS = Path(__file__).resolve().parents[2] / "docs" / "events"


def test_checked_in_schemas_match_the_models() -> None:
    expected = render_all()
    stale = sorted(
        name
        for name, content in expected.items()
        if not (DOCS / name).exists() or (DOCS / name).read_text() != content
    )
    assert not stale, f"docs/events is out of date for {stale}: run `make schemas`"
    extra = sorted(p.name for p in DOCS.glob("kaizen.*.json") if p.name not in expected)
    assert not extra, f"docs/events has schemas of no event type: {extra}"


def test_every_event_type_has_a_schema() -> None:
    assert {f"{t}.json" for t in EVENT_TYPES} <= set(render_all())


@settings(max_examples=100)
@given(st.one_of(*[envelopes(cls) for cls in EVENT_TYPES.values()]))
def test_every_encoded_event_validates_against_its_schema(envelope: Envelope) -> None:
    jsonschema.validate(json.loads(envelope.model_dump_json()), envelope_schema(envelope.type))
