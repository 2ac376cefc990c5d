"""What a local Kafka node is told: its ``server.properties``, as pure text.

Three shapes share one template: the single development node, a node of a local
cluster (``kaizen kafka start --brokers 3``), and a node whose client listener speaks
SASL_SSL with SCRAM (``--secure``). :mod:`kaizen_cli.kafka_local` writes the text and runs
the JVM; the team note kafka-from-maven.md gives the facts behind each setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

#: The SASL mechanism of the secure broker: SCRAM needs no extra infrastructure and,
#: unlike PLAIN, never sends the password itself.
SCRAM_MECHANISM: Final = "SCRAM-SHA-512"


@dataclass(frozen=True)
class BrokerTls:
    """The secure listener's material: a PEM keystore (key + certificate), the CA, a SCRAM login."""

    keystore: Path
    truststore: Path
    broker_user: str
    broker_password: str

    def __repr__(self) -> str:
        return f"BrokerTls(keystore={self.keystore!r}, broker_user={self.broker_user!r})"


@dataclass(frozen=True)
class NodeConfig:
    """One combined broker + controller node of a local cluster of ``len(voters)`` nodes."""

    node_id: int
    port: int
    controller_port: int
    log_dir: Path
    #: (node id, controller port) of every node, this one included.
    voters: tuple[tuple[int, int], ...]
    tls: BrokerTls | None = None

    @property
    def replicas(self) -> int:
        """Replication factor of every topic: one copy per node, at most three."""
        return min(len(self.voters), 3)

    @property
    def min_insync(self) -> int:
        """Acknowledged writes survive the loss of one node whenever there are two copies or more."""
        return max(self.replicas - 1, 1)

    @property
    def listener(self) -> str:
        return "SASL_SSL" if self.tls is not None else "PLAINTEXT"


def server_properties(node: NodeConfig) -> str:
    """The node's ``server.properties``."""
    voters = ",".join(f"{node_id}@127.0.0.1:{port}" for node_id, port in node.voters)
    text = _SERVER_PROPERTIES.format(
        node_id=node.node_id,
        voters=voters,
        listener=node.listener,
        port=node.port,
        controller_port=node.controller_port,
        log_dir=node.log_dir,
        replicas=node.replicas,
        min_insync=node.min_insync,
        offsets_partitions=1 if node.replicas == 1 else 3,
    )
    if node.tls is not None:
        text += _SECURE_PROPERTIES.format(
            mechanism=SCRAM_MECHANISM,
            listener_lower=node.listener.lower(),
            mechanism_lower=SCRAM_MECHANISM.lower(),
            user=node.tls.broker_user,
            password=node.tls.broker_password,
            keystore=node.tls.keystore,
            truststore=node.tls.truststore,
        )
    return text


_SERVER_PROPERTIES = """\
# Written by kaizen_cli/kafka_local.py on every start; edits here are lost.
# Replication factors and min ISR follow the node count (a single node needs 1 everywhere,
# or consumer groups and transactions wait forever for coordinators). Loopback only;
# advertise 127.0.0.1 (not localhost: IPv6 surprises), and never the controller port
# (transaction commits fail).
process.roles=broker,controller
node.id={node_id}
controller.quorum.voters={voters}
listeners={listener}://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}
advertised.listeners={listener}://127.0.0.1:{port}
inter.broker.listener.name={listener}
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,{listener}:{listener}
log.dirs={log_dir}
offsets.topic.replication.factor={replicas}
offsets.topic.num.partitions={offsets_partitions}
transaction.state.log.replication.factor={replicas}
transaction.state.log.min.isr={min_insync}
transaction.state.log.num.partitions={offsets_partitions}
share.coordinator.state.topic.replication.factor={replicas}
share.coordinator.state.topic.min.isr={min_insync}
default.replication.factor={replicas}
min.insync.replicas={min_insync}
unclean.leader.election.enable=false
group.initial.rebalance.delay.ms=0
# Kafka 4 rejects timestamps more than 1 h ahead by default; replayed test histories have them.
log.message.timestamp.after.max.ms=9223372036854775807
num.network.threads=2
num.io.threads=4
log.cleaner.dedupe.buffer.size=33554432
"""

# Clients and the brokers themselves authenticate with SCRAM over TLS. The controller
# listener stays plaintext on loopback: KRaft cannot use SCRAM there (the credentials live
# in the metadata the controllers serve).
_SECURE_PROPERTIES = """\
sasl.enabled.mechanisms={mechanism}
sasl.mechanism.inter.broker.protocol={mechanism}
listener.name.{listener_lower}.{mechanism_lower}.sasl.jaas.config=\
org.apache.kafka.common.security.scram.ScramLoginModule required \
username="{user}" password="{password}";
ssl.keystore.type=PEM
ssl.keystore.location={keystore}
ssl.truststore.type=PEM
ssl.truststore.location={truststore}
ssl.client.auth=none
"""

# One rolling file keeps the broker quiet on the terminal and bounded on disk.
LOG4J2_PROPERTIES = """\
# Written by kaizen_cli/kafka_local.py on every start; edits here are lost.
status = warn
# Log4j's own hook would close the file before Kafka's shutdown finishes logging; the last
# lines would then go to jvm.out through Log4j's fallback logger.
shutdownHook = disable
appender.file.type = RollingFile
appender.file.name = FILE
appender.file.fileName = ${sys:kafka.logs.dir}/server.log
appender.file.filePattern = ${sys:kafka.logs.dir}/server.log.%i
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
appender.file.policies.type = Policies
appender.file.policies.size.type = SizeBasedTriggeringPolicy
appender.file.policies.size.size = 50MB
appender.file.strategy.type = DefaultRolloverStrategy
appender.file.strategy.max = 3
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.requestchannel.name = kafka.network.RequestChannel$
logger.requestchannel.level = WARN
"""
