"""API keys: bootstrap (also racing), issue, list, revoke, and what 401 says."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from services.api.security import is_well_formed
from shared.readmodel.tables import api_keys
from tests.integration.api.conftest import Api, MakeApi, assert_problem
from tests.support.system import BOOTSTRAP_HEADER

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def test_of_ten_racing_bootstraps_exactly_one_wins(make_api: MakeApi) -> None:
    async with make_api(bootstrap=False) as api:
        answers = await asyncio.gather(
            *(
                api.client.post(
                    "/api/v1/keys/bootstrap", json={"name": f"racer-{i}"}, headers=BOOTSTRAP_HEADER
                )
                for i in range(10)
            )
        )
        assert sorted(r.status_code for r in answers) == [201] + [403] * 9, [r.text for r in answers]
        for response in answers:
            if response.status_code == 403:
                assert assert_problem(response, 403)["title"] == "Bootstrap is closed"
        winner = next(r.json() for r in answers if r.status_code == 201)
        listed = await api.client.get("/api/v1/keys", headers={"X-API-Key": winner["key"]})
        assert [k["id"] for k in listed.json()] == [winner["id"]]
        assert len(await api.table(api_keys)) == 1


async def test_bootstrap_is_closed_once_a_key_exists(api: Api) -> None:
    async with api.anonymous() as anonymous:
        body = assert_problem(await anonymous.post("/api/v1/keys/bootstrap", headers=BOOTSTRAP_HEADER), 403)
        assert body["type"] == "urn:kaizen:problem:bootstrap-closed"


async def test_a_new_key_is_shown_once_and_stored_as_its_hash(api: Api) -> None:
    response = await api.client.post("/api/v1/keys", json={"name": "ci", "role": "read"})
    assert response.status_code == 201, response.text
    created = response.json()
    assert set(created) == {"id", "name", "role", "key", "prefix", "created_at"}
    assert is_well_formed(created["key"]) and created["key"].startswith(created["prefix"])
    assert created["created_at"].endswith("Z")
    listed = (await api.client.get("/api/v1/keys")).json()
    assert {k["name"] for k in listed} == {"tests", "ci"}
    assert all("key" not in k for k in listed)
    assert created["key"] not in (await api.client.get("/api/v1/keys")).text
    rows = {r.id: r for r in await api.table(api_keys)}
    assert rows[created["id"]].key_hash == hashlib.sha256(created["key"].encode()).hexdigest()
    second = await api.client.get("/api/v1/jobs", headers={"X-API-Key": created["key"]})
    assert second.status_code == 200


async def test_a_revoked_key_is_refused_on_the_next_request(api: Api) -> None:
    created = (await api.client.post("/api/v1/keys", json={"name": "temp", "role": "read"})).json()
    headers = {"X-API-Key": created["key"]}
    assert (await api.client.get("/api/v1/tasks", headers=headers)).status_code == 200
    revoked = await api.client.delete(f"/api/v1/keys/{created['id']}")
    assert revoked.status_code == 204 and revoked.content == b""
    refused = await api.client.get("/api/v1/tasks", headers=headers)
    assert assert_problem(refused, 401)["title"] == "Invalid or revoked API key"
    assert_problem(await api.client.delete(f"/api/v1/keys/{created['id']}"), 409)
    assert_problem(await api.client.delete("/api/v1/keys/00000000-0000-4000-8000-000000000000"), 404)
    listed = {k["id"]: k for k in (await api.client.get("/api/v1/keys")).json()}
    assert listed[created["id"]]["status"] == "revoked" and listed[created["id"]]["revoked_at"].endswith("Z")


async def test_401_titles_tell_missing_from_invalid(api: Api) -> None:
    async with api.anonymous() as anonymous:
        assert assert_problem(await anonymous.get("/api/v1/jobs"), 401)["title"] == "Missing API key"
        wrong = await anonymous.get("/api/v1/jobs", headers={"X-API-Key": "kaizen_" + "0" * 32})
        assert assert_problem(wrong, 401)["title"] == "Invalid or revoked API key"
        assert (await anonymous.get("/health")).status_code == 200
        assert (await anonymous.get("/openapi.json")).status_code == 200
