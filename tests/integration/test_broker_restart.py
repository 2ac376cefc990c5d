"""``kaizen up``'s supervisor brings a killed local broker back, on the same data, and leaves
the services it supervises running meanwhile.

Its own LocalKafka on free ports in ``tmp_path`` (not the session broker, which other
tests use), sharing the machine's jar cache; the supervisor's watch loop runs in a thread.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from kaizen_cli.supervisor import Supervisor, child_env
from shared.kafka.ready import wait_ready
from tests.integration.test_local_kafka import _consume, _new_topic, _produce
from tests.support.broker import local_kafka

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]


def test_a_killed_broker_jvm_is_restarted_on_its_data_while_services_keep_running(tmp_path: Path) -> None:
    kafka = local_kafka(tmp_path / "home")
    supervisor = Supervisor(child_env({}), delays=(0.5,))
    watcher = threading.Thread(target=supervisor.watch, daemon=True)
    try:
        bootstrap = kafka.start(fresh=True)
        topic = asyncio.run(_new_topic(bootstrap))
        asyncio.run(_produce(bootstrap, topic, [b"written before the crash"]))
        service = supervisor.add_command("service", SLEEPER, tmp_path / "service.log")
        broker = supervisor.watch_broker(kafka)
        old_pid = broker.pid
        assert old_pid is not None
        watcher.start()

        os.kill(old_pid, signal.SIGKILL)

        deadline = time.monotonic() + 150
        while time.monotonic() < deadline and broker.pid in (None, old_pid):
            time.sleep(0.5)
        assert broker.pid not in (None, old_pid), f"Kafka was not restarted; see {kafka.server_log}"
        asyncio.run(wait_ready(bootstrap, 60))
        assert asyncio.run(_consume(bootstrap, topic, count=1)) == [b"written before the crash"]
        assert service.process is not None and service.process.poll() is None and service.restarts == 0
        assert not Path(f"/proc/{old_pid}").exists(), "the killed JVM was left a zombie"
    finally:
        supervisor.stopping = True
        if watcher.is_alive():
            watcher.join(10)
        supervisor.stop_all(grace=5)
        kafka.stop()
