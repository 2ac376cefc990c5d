"""A local Kafka cluster of several combined broker + controller nodes (``kaizen kafka start --brokers 3``).

Each node is a :class:`LocalKafka` under ``<home>/kafka-cluster/node-N`` with its own
ports; all share one cluster id and one static controller quorum. Topics get three
replicas and ``min.insync.replicas=2``, so an acknowledged write (``acks=all``) survives
the loss of any one node, and writes go on while two of three run.

The nodes can only become ready together (a controller quorum needs a majority), so
they are prepared and launched first and awaited as one.
"""

from __future__ import annotations

import base64
import os
import signal
from collections.abc import Sequence
from pathlib import Path

from kaizen_cli.kafka_local import (
    KafkaStatus,
    LocalKafka,
    LocalKafkaError,
    _locked,
    _pid_alive,
    _read_text,
    _wait_until,
)


def cluster_ports(port: int, controller_port: int, brokers: int) -> list[tuple[int, int]]:
    """(client, controller) ports of each node: the configured pair, then every second port above."""
    ports = [(port + 2 * i, controller_port + 2 * i) for i in range(brokers)]
    flat = [p for pair in ports for p in pair]
    if len(set(flat)) != len(flat) or max(flat) > 65535:
        raise LocalKafkaError(
            f"Ports {flat} of a {brokers}-node cluster collide or overflow; choose KAIZEN_KAFKA_PORT "
            "and KAIZEN_KAFKA_CONTROLLER_PORT one apart (e.g. 9092 and 9093)."
        )
    return ports


class LocalKafkaCluster:
    """``len(ports)`` local nodes owned by ``home``; started, awaited and stopped together."""

    def __init__(
        self,
        home: Path,
        ports: Sequence[tuple[int, int]],
        heap: str = "512m",
        *,
        lib_dir: Path | None = None,
        pom: Path | None = None,
    ) -> None:
        self.root = home.expanduser().resolve() / "kafka-cluster"
        voters = tuple((index + 1, controller) for index, (_, controller) in enumerate(ports))
        self.nodes = [
            LocalKafka(
                home,
                port,
                controller,
                heap,
                lib_dir=lib_dir,
                pom=pom,
                node_id=node_id,
                voters=voters,
                root=self.root / f"node-{node_id}",
            )
            for (port, controller), (node_id, _) in zip(ports, voters, strict=True)
        ]

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    @property
    def replication_factor(self) -> int:
        return min(len(self.nodes), 3)

    def client_env(self) -> str:
        """The ``KAIZEN_*`` lines that point services at this cluster and make topics replicated."""
        return (
            f"KAIZEN_KAFKA_BOOTSTRAP={self.bootstrap}\nKAIZEN_REPLICATION_FACTOR={self.replication_factor}\n"
        )

    def start(self, timeout: float = 120, *, fresh: bool = False) -> str:
        """Start every node that is not running (a killed node rejoins); return the bootstrap once
        all of them serve. ``fresh=True`` deletes the cluster's data first; refused while a node runs."""
        self.root.mkdir(parents=True, exist_ok=True)
        with _locked(self.root / ".lock"):
            stopped = [node for node in self.nodes if not node.status()["running"]]
            if fresh and len(stopped) < len(self.nodes):
                raise LocalKafkaError(f"A node of {self.root} is running; stop the cluster before --fresh.")
            launched: list[tuple[LocalKafka, int]] = []
            try:
                cluster_id = self._cluster_id(fresh)
                for node in stopped:
                    java = node.prepare(fresh=fresh, cluster_id=cluster_id)
                    launched.append((node, node.launch(java)))
                pids = [pid for node in self.nodes if (pid := node.status()["pid"]) is not None]
                self.nodes[0].await_ready(self.bootstrap, timeout, pids, brokers=len(self.nodes))
            except BaseException:
                for node, pid in launched:
                    node.kill_half_started(pid)
                raise
        return self.bootstrap

    def stop(self, timeout: float = 30) -> bool:
        """Stop every node at once (one by one, the last ones would wait for a lost quorum);
        SIGKILL after ``timeout`` seconds. Returns whether a node was running."""
        running = [(node, pid) for node in self.nodes if (pid := node.status()["pid"]) is not None]
        for signum, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
            for _, pid in running:
                if _pid_alive(pid):
                    os.kill(pid, signum)
            if _wait_until(lambda: not any(_pid_alive(pid) for _, pid in running), wait):
                break
        else:
            raise LocalKafkaError(f"Kafka nodes {[pid for _, pid in running]} survived SIGKILL.")
        for node, pid in running:
            node.collect(pid)
        return bool(running)

    def status(self) -> list[KafkaStatus]:
        return [node.status() for node in self.nodes]

    def _cluster_id(self, fresh: bool) -> str:
        path = self.root / "cluster.id"
        if not fresh and (existing := _read_text(path)) is not None:
            return existing.strip()
        cluster_id = "-"
        while cluster_id.startswith("-"):  # as Kafka's Uuid does: a leading '-' reads as a CLI flag
            cluster_id = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
        path.write_text(cluster_id + "\n")
        return cluster_id
