"""The metric families (shared/metrics.py), the worker endpoint, and the API's request metrics."""

from __future__ import annotations

import json
import re
import socket
import urllib.request
from pathlib import Path

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from services.api import limits, request_metrics
from shared import metrics


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_every_family_is_named_kaizen_and_documented() -> None:
    families = [
        value
        for value in vars(metrics).values()
        if hasattr(value, "_name") and hasattr(value, "_documentation")
    ]
    assert len(families) >= 14
    for family in families:
        assert family._name.startswith("kaizen_"), family._name
        assert len(family._documentation) > 20, family._name


def test_port_zero_serves_nothing() -> None:
    assert metrics.serve(0) is None
    metrics.stop(None)


def test_a_worker_port_serves_the_families_until_stopped() -> None:
    port = _free_port()
    server = metrics.serve(port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
        assert "# HELP kaizen_projector_records_total" in text
        assert "# TYPE kaizen_optimizer_job_duration_seconds histogram" in text
    finally:
        metrics.stop(server)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_llm_usage_counts_only_growth() -> None:
    before = _value("kaizen_llm_calls_total", model="unit/model")
    cost = _value("kaizen_llm_cost_usd_total", model="unit/model")
    metrics.count_llm_usage("unit/model", 3, 100, 20, 0.5)
    metrics.count_llm_usage("unit/model", -1, -5, 0, -0.1)  # a meter that restarted adds nothing
    assert _value("kaizen_llm_calls_total", model="unit/model") == before + 3
    assert _value("kaizen_llm_tokens_total", model="unit/model", kind="prompt") >= 100
    assert _value("kaizen_llm_cost_usd_total", model="unit/model") == pytest.approx(cost + 0.5)


def _app() -> FastAPI:
    app = FastAPI()

    @app.post("/things/{thing_id}")
    async def put_thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    nested = APIRouter(prefix="/api")

    @nested.get("/items/{item_id}")
    async def get_item(item_id: str) -> dict[str, str]:
        return {"id": item_id}

    app.include_router(nested)
    limits.install(app, limits.BodyLimits(json=1024))
    request_metrics.install(app)
    return app


def test_requests_are_labelled_by_route_template_not_raw_path() -> None:
    labels = {"method": "POST", "route": "/things/{thing_id}", "status": "200"}
    before = _value("kaizen_api_requests_total", **labels)
    with TestClient(_app()) as client:
        for n in range(3):
            assert client.post(f"/things/t{n}").status_code == 200
        assert client.get("/nowhere/at-all").status_code == 404
        text = client.get("/metrics").text
    assert _value("kaizen_api_requests_total", **labels) == before + 3
    assert _value("kaizen_api_request_duration_seconds_count", **labels) >= 3
    assert 'route="/things/t0"' not in text
    assert 'route="unmatched",status="404"' in text


def test_a_route_of_an_included_router_is_labelled_with_its_full_template() -> None:
    labels = {"method": "GET", "route": "/api/items/{item_id}", "status": "200"}
    before = _value("kaizen_api_requests_total", **labels)
    with TestClient(_app()) as client:
        assert client.get("/api/items/abc").status_code == 200
    assert _value("kaizen_api_requests_total", **labels) == before + 1


def test_a_413_before_routing_counts_as_a_refusal_of_its_route() -> None:
    before = _value("kaizen_api_refusals_total", route="/things/{thing_id}", status="413")
    with TestClient(_app()) as client:
        assert client.post("/things/x", content=b"x" * 4096).status_code == 413
    assert _value("kaizen_api_refusals_total", route="/things/{thing_id}", status="413") == before + 1


def test_metrics_needs_no_key_and_is_text_exposition() -> None:
    with TestClient(_app()) as client:
        answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    assert "kaizen_api_requests_total" in answer.text


def test_a_port_in_use_leaves_the_service_running_without_metrics(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        assert metrics.serve(taken.getsockname()[1]) is None
    assert "metrics not served" in caplog.text


def _exported_names() -> set[str]:
    names = set()
    for family in REGISTRY.collect():
        if family.name.startswith("kaizen_"):
            suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum", ""]}
            names |= {family.name + s for s in suffixes.get(family.type, [""])}
    return names


def test_the_docs_and_the_dashboard_name_only_families_that_exist() -> None:
    docs = Path(__file__).parents[2] / "docs"
    operations = (docs / "operations.md").read_text()
    section = operations[operations.index("## Metrics") :]
    dashboard = json.loads((docs / "grafana-dashboard.json").read_text())
    queries = " ".join(t["expr"] for panel in dashboard["panels"] for t in panel["targets"])
    named = set(re.findall(r"\bkaizen_[a-z_]+", section + queries))
    assert named and named <= _exported_names(), named - _exported_names()
    documented = set(re.findall(r"`(kaizen_[a-z_]+)`", section))
    assert {n for n in _exported_names() if not n.endswith(("_bucket", "_count", "_sum"))} <= documented
