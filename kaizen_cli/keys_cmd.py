"""``kaizen keys create|list|revoke`` over HTTP, and ``kaizen keys bootstrap`` on the server side.

``create``, ``list`` and ``revoke`` call the API with an admin key, like every other
HTTP command (``kaizen_cli.remote``). ``bootstrap`` makes the first admin key: it appends
the key's event to the keys topic directly, so it runs where the operator reaches the broker
(``KAIZEN_KAFKA_BOOTSTRAP``), not over HTTP: no secret is needed beyond access to the log.
The outcome is read back from the log, folded by the same :class:`KeyRing` the API
authenticates with: a bootstrap key takes effect only while no key exists, so of several
racing bootstraps (CLI or HTTP) exactly one wins.
"""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request
import uuid
from typing import Annotated, Literal

import typer
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from kaizen_client import Kaizen, KaizenError
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from kaizen_cli import remote
from kaizen_cli.remote import ApiKey, Json, Url, connect, out, print_json, when
from services.api.keyring import KeyRing, new_key_event
from services.api.security import hash_key
from shared.events import codec
from shared.events.envelope import Envelope
from shared.events.topics import Topics
from shared.kafka.admin import ensure_topics
from shared.kafka.producer import EventLog, LogUnavailable
from shared.kafka.security import client_options
from shared.settings import Settings

keys_app = typer.Typer(
    help="API keys: create, list, revoke (over HTTP, with an admin key); bootstrap the first one.",
    no_args_is_help=True,
)
err = Console(stderr=True)

SOURCE = "kaizen-cli"


class KeysExist(Exception):
    """Bootstrap is closed: the keys topic holds a key already."""


async def bootstrap_first_key(
    bootstrap: str, topics: Topics, name: str, *, partitions: int = 1, replication_factor: int = 1
) -> str:
    """Append a bootstrap admin key and return it once the log shows that it took effect.

    Raises :class:`KeysExist` when a key exists already (before appending, or because an
    earlier bootstrap won the race), ``LogUnavailable``/``KafkaError`` when Kafka is down.
    """
    # Topics as `kaizen up` creates them, so this works before any service has run.
    await ensure_topics(bootstrap, topics, partitions=partitions, replication_factor=replication_factor)
    ring = KeyRing()
    end = await _fold(bootstrap, topics.keys, ring, 0, until=None)
    if len(ring):
        raise KeysExist
    key, event = new_key_event(name, "admin", bootstrap=True)
    log = EventLog(bootstrap, topics, client_id=SOURCE)
    try:
        position = await log.append(Envelope.wrap(event, source=SOURCE))
    finally:
        await log.stop()
    await _fold(bootstrap, topics.keys, ring, end, until=position.offset + 1)
    if ring.active(hash_key(key)) is None:
        raise KeysExist
    return key


async def _fold(bootstrap: str, topic: str, ring: KeyRing, start: int, until: int | None) -> int:
    """Fold the keys topic from ``start`` up to ``until`` (default: its current end) into ``ring``."""
    partition = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed",
        **client_options(),
    )
    await consumer.start()
    try:
        consumer.assign([partition])
        consumer.seek(partition, start)
        end = until if until is not None else (await consumer.end_offsets([partition]))[partition]
        while await consumer.position(partition) < end:
            batches = await consumer.getmany(partition, timeout_ms=1000)
            for record in batches.get(partition, []):
                try:
                    ring.apply(codec.decode(record.value))
                except codec.PoisonRecord:
                    continue  # as the API's key feed and the projector: not a key
        return end
    finally:
        await consumer.stop()


@keys_app.command()
def bootstrap(
    name: Annotated[str, typer.Option(help="The key's name, shown in key lists.")] = "first key",
) -> None:
    """Create the first admin key by appending it to the log; print it once (on stdout).

    Works only while no key exists. Run it where the broker is reachable, with the same
    KAIZEN_KAFKA_BOOTSTRAP and KAIZEN_TOPIC_PREFIX as the services.
    """
    from kaizen_cli.main import load_settings

    settings: Settings = load_settings()
    topics = Topics(settings.topic_prefix)
    try:
        key = asyncio.run(
            bootstrap_first_key(
                settings.resolved_kafka_bootstrap,
                topics,
                name,
                partitions=settings.partitions,
                replication_factor=settings.replication_factor,
            )
        )
    except KeysExist:
        err.print("[red]An API key exists already;[/] create more with POST /api/v1/keys and an admin key.")
        raise typer.Exit(1) from None
    except (LogUnavailable, KafkaError, OSError) as exc:
        err.print(f"[red]Kafka at {settings.resolved_kafka_bootstrap} is not reachable:[/] {exc}")
        raise typer.Exit(1) from None
    err.print("The first admin key (shown once; store it now):")
    print(key)


def wait_accepted(api: str, key: str, timeout: float) -> bool:
    """Whether the API at ``api`` accepts ``key`` within ``timeout`` s (it reads the keys topic
    within milliseconds; a moment more when it checks keys in the read model)."""
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(f"{api}/api/v1/keys", headers={"X-API-Key": key})  # noqa: S310
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(request, timeout=5):  # noqa: S310 (the operator's API URL)
                return True
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    return False


Role = Literal["ingest", "read", "admin"]


@keys_app.command()
def create(
    name: Annotated[str, typer.Argument(help="What the key is for, shown in key lists.", show_default=False)],
    role: Annotated[
        Role, typer.Option(help="ingest: send feedback; read: also read; admin: everything.")
    ] = "ingest",
    url: Url = None,
    api_key: ApiKey = None,
    json_: Json = False,
) -> None:
    """Create an API key; print it once, alone on stdout (store it now: it is never shown again)."""
    with connect(url, api_key) as client:
        created = client.keys.create(name, role)
    if json_:
        print_json(created)
        return
    remote.err.print(f"Created {created.role} key {created.name!r} ({created.id}); shown once, store it now:")
    print(created.key)


@keys_app.command("list")
def list_keys(url: Url = None, api_key: ApiKey = None, json_: Json = False) -> None:
    """Every key: id, name, role, prefix, status (never the key itself)."""
    with connect(url, api_key) as client:
        keys = client.keys.list()
    if json_:
        print_json(keys)
        return
    table = Table("id", "name", "role", "prefix", "status", "created", "revoked")
    for key in keys:
        status = "[green]active[/]" if key.status == "active" else "[red]revoked[/]"
        table.add_row(
            str(key.id),
            escape(key.name),
            key.role,
            key.prefix,
            status,
            when(key.created_at),
            when(key.revoked_at),
        )
    out.print(table)


@keys_app.command()
def revoke(
    key: Annotated[str, typer.Argument(help="The key's id, or its prefix as `keys list` shows it.")],
    url: Url = None,
    api_key: ApiKey = None,
) -> None:
    """Revoke a key: the API refuses it within seconds, streams it opened included."""
    with connect(url, api_key) as client:
        key_id = _key_id(client, key)
        client.keys.revoke(key_id)
    out.print(f"Revoked key {key_id}.")


def _key_id(client: Kaizen, ref: str) -> uuid.UUID:
    try:
        return uuid.UUID(ref)
    except ValueError:
        pass
    matches = [k.id for k in client.keys.list() if k.prefix == ref or k.prefix.startswith(ref)]
    if len(matches) != 1:
        found = "no key" if not matches else f"{len(matches)} keys"
        raise KaizenError(f"{found} with the prefix {ref!r} (`kaizen keys list` shows them)")
    return matches[0]
