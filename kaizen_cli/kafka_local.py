"""A real single-node Apache Kafka (KRaft) run from Maven Central jars, for development and tests.

Our machines have Java and Maven but no Docker engine and no access to Apache's download
site, so the broker is assembled from the jars listed in ``deploy/kafka/pom.xml``. The
team note "A real single-node Apache Kafka from Maven Central jars" (kafka-from-maven.md)
gives the facts behind every setting here.

Everything lives under ``<home>/kafka`` (``<home>/kafka-secure`` for the SASL_SSL
variant, ``<home>/kafka-cluster/node-N`` for a node of a local cluster)::

    lib/            jars, fetched once by Maven (``.complete`` marks a finished fetch);
                    the variants share ``<home>/kafka/lib``
    config/         server.properties, log4j2.properties (rewritten on each start)
    data/           cluster.id and log/ (the formatted KRaft log dir; kept across restarts)
    secure/         CA, certificate and SCRAM passwords of the secure variant (kafka_secure.py)
    logs/           server.log (Kafka's log), jvm.out (the JVM's stdout and stderr)
    kafka.pid       the running broker's pid

The JVM runs detached in its own session, so it outlives the command that started it
until :meth:`LocalKafka.stop`. Linux only: liveness checks read ``/proc``.
"""

from __future__ import annotations

import asyncio
import base64
import errno
import fcntl
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TypedDict

from kaizen_cli.kafka_config import LOG4J2_PROPERTIES, NodeConfig, server_properties
from kaizen_cli.kafka_secure import SecureMaterial
from shared.kafka.ready import KafkaNotReadyError, wait_ready
from shared.kafka.security import PLAINTEXT, KafkaSecurity

POM_IN_REPO = Path("deploy/kafka/pom.xml")
MAVEN_COPY_GOAL = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies"
KAFKA_MAIN_CLASS = "kafka.Kafka"
MIN_JAVA = 17
_JARS_COMPLETE = ".complete"


class LocalKafkaError(RuntimeError):
    """The local broker could not be fetched, started or stopped; the message says what to do."""


class KafkaStatus(TypedDict):
    """What :meth:`LocalKafka.status` reports."""

    running: bool
    pid: int | None
    bootstrap: str
    data_dir: str
    log_path: str


class LocalKafka:
    """One local broker (combined KRaft broker + controller) owned by a home directory.

    ``lib_dir`` lets several homes share one jar cache (tests); ``pom`` overrides where
    the jar list is read from (default: ``deploy/kafka/pom.xml`` of this repository).
    ``secure=True`` makes the client listener SASL_SSL with SCRAM-SHA-512 (a generated CA
    and users, see :mod:`kaizen_cli.kafka_secure`). ``node_id``, ``voters`` and ``root``
    make it one node of a :class:`kaizen_cli.kafka_cluster.LocalKafkaCluster`.
    """

    def __init__(
        self,
        home: Path,
        port: int = 9092,
        controller_port: int = 9093,
        heap: str = "1g",
        *,
        lib_dir: Path | None = None,
        pom: Path | None = None,
        secure: bool = False,
        node_id: int = 1,
        voters: tuple[tuple[int, int], ...] | None = None,
        root: Path | None = None,
    ) -> None:
        if port == controller_port:
            raise ValueError(f"port and controller_port must differ, both are {port}")
        if not re.fullmatch(r"\d+[mg]", heap):
            raise ValueError(f"heap must look like 512m or 1g, got {heap!r}")
        self.port, self.controller_port, self.heap = port, controller_port, heap
        self.node_id, self.voters = node_id, voters or ((node_id, controller_port),)
        home = home.expanduser().resolve()
        self.root = (root or home / ("kafka-secure" if secure else "kafka")).expanduser().resolve()
        self.lib_dir = (lib_dir or home / "kafka" / "lib").expanduser().resolve()
        self.secure = SecureMaterial(self.root / "secure") if secure else None
        self.config_dir = self.root / "config"
        self.data_dir = self.root / "data"
        self.log_dir = self.data_dir / "log"
        self.logs_dir = self.root / "logs"
        self.server_log = self.logs_dir / "server.log"
        self.jvm_out = self.logs_dir / "jvm.out"
        self.pid_file = self.root / "kafka.pid"
        self.server_properties = self.config_dir / "server.properties"
        self._pom = pom
        # Log sizes when this instance launched the JVM: errors quote only what it wrote.
        self._log_marks: dict[Path, int] = {}

    @property
    def bootstrap(self) -> str:
        """The bootstrap address this instance starts a broker on."""
        return f"127.0.0.1:{self.port}"

    @property
    def client_security(self) -> KafkaSecurity:
        """How a client of this broker connects (the services' SCRAM user on a secure broker)."""
        return self.secure.client_security() if self.secure is not None else PLAINTEXT

    # -- jars ---------------------------------------------------------------------------

    def jars_ready(self) -> bool:
        """Whether ``lib_dir`` holds a finished fetch of the current pom (no download needed)."""
        return _read_text(self.lib_dir / _JARS_COMPLETE) == _jar_stamp(self._pom or find_pom())

    def ensure_jars(self) -> Path:
        """Fetch the broker's jars into ``lib_dir`` unless a finished fetch of this pom is there."""
        pom = self._pom or find_pom()
        stamp = _jar_stamp(pom)
        if _read_text(self.lib_dir / _JARS_COMPLETE) == stamp:
            return self.lib_dir
        self.lib_dir.parent.mkdir(parents=True, exist_ok=True)
        with _locked(self.lib_dir.parent / f".{self.lib_dir.name}.lock"):
            if _read_text(self.lib_dir / _JARS_COMPLETE) != stamp:  # another process may have won
                self._fetch_jars(pom, stamp)
        return self.lib_dir

    def _fetch_jars(self, pom: Path, stamp: str) -> None:
        # Fetch into a staging dir and swap it in whole: an interrupted download never
        # looks complete, and jars of an older pom never mix with the new ones.
        staging = Path(tempfile.mkdtemp(prefix=f".{self.lib_dir.name}-", dir=self.lib_dir.parent))
        try:
            staging.chmod(0o755)  # mkdtemp makes it private; the jar cache may be shared between users
            _run_maven(pom, staging)
            (staging / _JARS_COMPLETE).write_text(stamp)
            if self.lib_dir.exists():
                _remove_jar_dir(self.lib_dir)
            staging.rename(self.lib_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    # -- start --------------------------------------------------------------------------

    def start(self, timeout: float = 90, *, fresh: bool = False) -> str:
        """Start the broker (or find it running) and return its bootstrap once it is ready.

        ``timeout`` bounds the wait for readiness, not the one-time jar download.
        ``fresh=True`` deletes this home's data first (all topics); refused while running.
        Synchronous: call it from a thread, not from inside a running event loop.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        with _locked(self.root / ".lock"):  # two concurrent starts must not launch two JVMs
            pid = self._live_pid()
            if pid is not None:
                return self._adopt_running(pid, timeout, fresh)
            java = self.prepare(fresh=fresh)
            pid = self.launch(java)
            try:
                self.await_ready(self.bootstrap, timeout, [pid])
            except BaseException:
                self.kill_half_started(pid)
                raise
            return self.bootstrap

    def prepare(self, *, fresh: bool, cluster_id: str | None = None) -> str:
        """Everything before the JVM runs (ports, jars, secrets, config, storage); returns ``java``.

        ``cluster_id``: the id shared by every node of a cluster (default: this node's own).
        The caller holds this home's lock.
        """
        self._check_ports_free()
        self.ensure_jars()
        java = find_java()
        if fresh:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            if self.secure is not None:
                self.secure.remove()  # the SCRAM users live in the log: new log, new secrets
        self._ensure_secrets()
        self._write_config()
        self._format_storage(java, cluster_id)
        return java

    def launch(self, java: str) -> int:
        """Run the prepared broker's JVM, detached; returns its pid (not yet ready)."""
        self._log_marks = {path: _size(path) for path in (self.server_log, self.jvm_out)}
        return self._launch(java)

    def kill_half_started(self, pid: int) -> None:
        """Never leave a JVM behind whose start failed."""
        if _pid_alive(pid) and self._is_our_broker(pid):
            self._stop_pid(pid, timeout=30)

    def _ensure_secrets(self) -> None:
        if self.secure is None:
            return
        if not self.secure.exists() and (self.log_dir / "meta.properties").exists():
            raise LocalKafkaError(
                f"{self.secure.directory} is missing, but the broker's log in {self.log_dir} holds "
                "SCRAM users made with it. Delete the data (rm -r "
                f"{self.data_dir}) to start over with new secrets."
            )
        self.secure.ensure()

    def _adopt_running(self, pid: int, timeout: float, fresh: bool) -> str:
        if fresh:
            raise LocalKafkaError(
                f"Kafka from {self.root} is running (pid {pid}); stop it before asking for fresh data."
            )
        bootstrap = self._running_bootstrap()
        self.await_ready(bootstrap, timeout, [pid])
        return bootstrap

    def _check_ports_free(self) -> None:
        for name, port in (("client", self.port), ("controller", self.controller_port)):
            if not _port_free(port):
                raise LocalKafkaError(
                    f"The Kafka {name} port 127.0.0.1:{port} is already in use by another program "
                    f"(no broker from {self.root} is running). Stop that program, or choose other "
                    "ports (KAIZEN_KAFKA_PORT / KAIZEN_KAFKA_CONTROLLER_PORT)."
                )

    def _write_config(self) -> None:
        for directory in (self.config_dir, self.data_dir, self.logs_dir):
            directory.mkdir(parents=True, exist_ok=True)
        node = NodeConfig(
            node_id=self.node_id,
            port=self.port,
            controller_port=self.controller_port,
            log_dir=self.log_dir,
            voters=self.voters,
            tls=self.secure.broker_tls() if self.secure is not None else None,
        )
        # The secure variant's file holds the brokers' SCRAM password.
        _write_atomically(self.server_properties, server_properties(node), mode=0o600)
        (self.config_dir / "log4j2.properties").write_text(LOG4J2_PROPERTIES)

    def _format_storage(self, java: str, cluster_id: str | None) -> None:
        if (self.log_dir / "meta.properties").exists():
            return  # formatted before: keep the log (re-formatting would fail anyway)
        command = [
            java,
            "-Xmx256m",
            *self._log_flags(),
            "-cp",
            self._classpath(),
            "kafka.tools.StorageTool",
            "format",
            "-t",
            cluster_id or self._cluster_id(),
            "-c",
            str(self.server_properties),
            *(self.secure.scram_arguments() if self.secure is not None else []),
        ]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise LocalKafkaError(
                f"Formatting Kafka storage in {self.log_dir} failed (exit {result.returncode}):\n"
                f"{_last_lines(result.stdout + result.stderr)}\nFull log: {self.server_log}"
            )

    def _cluster_id(self) -> str:
        # Kept beside the log so a format that failed halfway is retried with the same id.
        path = self.data_dir / "cluster.id"
        if (existing := _read_text(path)) is not None:
            return existing.strip()
        cluster_id = "-"
        while cluster_id.startswith("-"):  # as Kafka's Uuid does: a leading '-' reads as a CLI flag
            cluster_id = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
        path.write_text(cluster_id + "\n")
        return cluster_id

    def _launch(self, java: str) -> int:
        heap_mb = int(self.heap[:-1]) * (1024 if self.heap.endswith("g") else 1)
        command = [
            java,
            f"-Xms{min(heap_mb, 256)}m",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-XX:ErrorFile={self.logs_dir}/hs_err_pid%p.log",  # crash reports beside the log, not in the cwd
            *self._log_flags(),
            "-cp",
            self._classpath(),
            KAFKA_MAIN_CLASS,
            str(self.server_properties),
        ]
        # posix_spawn, not Popen: the broker is meant to outlive this process, and a Popen
        # object that is dropped while its child runs warns (ResourceWarning). setsid puts
        # the JVM in its own session, so Ctrl-C in the starting terminal never reaches it.
        pid = os.posix_spawn(
            java,
            command,
            os.environ,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, str(self.jvm_out), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ],
            setsid=True,
        )
        _write_atomically(self.pid_file, f"{pid}\n")
        return pid

    def await_ready(self, bootstrap: str, timeout: float, pids: list[int], brokers: int = 1) -> None:
        """Wait until ``bootstrap`` serves ``brokers`` brokers; fail early if one of ``pids`` exits."""
        try:
            exited = asyncio.run(
                _ready_or_exit(
                    bootstrap,
                    timeout,
                    lambda: all(_pid_alive(pid) for pid in pids),
                    self.client_security,
                    brokers,
                )
            )
        except KafkaNotReadyError as exc:
            raise LocalKafkaError(f"{exc}.\n{self._log_excerpt()}") from exc
        if exited:
            pid = next(pid for pid in pids if not _pid_alive(pid))
            code = _reap(pid)
            _unlink_if_names(self.pid_file, pid)
            how = f" with exit code {code}" if code is not None else ""
            raise LocalKafkaError(f"Kafka (pid {pid}) exited{how} while starting.\n{self._log_excerpt()}")

    # -- stop ---------------------------------------------------------------------------

    def stop(self, timeout: float = 30) -> bool:
        """Stop the broker of this home; return whether one was running.

        SIGTERM lets Kafka shut down cleanly; SIGKILL follows after ``timeout`` seconds.
        """
        if self._live_pid() is None:
            return False  # checked before locking so that stopping never creates the home
        with _locked(self.root / ".lock"):
            pid = self._live_pid()
            if pid is None:
                return False
            self._stop_pid(pid, timeout)
            return True

    def _stop_pid(self, pid: int, timeout: float) -> None:
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
            with suppress(ProcessLookupError):
                os.kill(pid, sig)
            if _wait_until(lambda: not _pid_alive(pid), wait):
                break
        else:
            raise LocalKafkaError(f"Kafka (pid {pid}) survived SIGKILL; check `ps -p {pid}`.")
        _reap(pid)
        self.pid_file.unlink(missing_ok=True)

    # -- status -------------------------------------------------------------------------

    def status(self) -> KafkaStatus:
        """Whether this home's broker runs, and where to find its address, data and log."""
        pid = self._live_pid()
        return KafkaStatus(
            running=pid is not None,
            pid=pid,
            bootstrap=self._running_bootstrap() if pid is not None else self.bootstrap,
            data_dir=str(self.data_dir),
            log_path=str(self.server_log),
        )

    def pid_running(self, pid: int) -> bool:
        """Whether ``pid`` still runs this home's broker (cheap: for a supervisor's watch loop)."""
        return _pid_alive(pid) and self._is_our_broker(pid)

    def collect(self, pid: int) -> int | None:
        """Reap the broker JVM ``pid`` once it has exited; its exit code if this process started it.

        The JVM is our child when this process started it: without this it stays a zombie.
        """
        if _pid_alive(pid):
            return None
        if _read_text(self.pid_file) == f"{pid}\n":
            self.pid_file.unlink(missing_ok=True)
        return _reap(pid)

    def _live_pid(self) -> int | None:
        """This home's running broker: from the pid file, else found in ``/proc``.

        A stale pid file (the broker died, or its pid now belongs to another program) is
        removed; a broker whose pid file was lost is found again, so it can still be stopped.
        """
        text = (_read_text(self.pid_file) or "").strip()
        if text.isdigit() and _pid_alive(int(text)) and self._is_our_broker(int(text)):
            return int(text)
        self.pid_file.unlink(missing_ok=True)
        found = next((pid for pid in _all_pids() if _pid_alive(pid) and self._is_our_broker(pid)), None)
        if found is not None:
            _write_atomically(self.pid_file, f"{found}\n")
        return found

    def _is_our_broker(self, pid: int) -> bool:
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return False
        return KAFKA_MAIN_CLASS.encode() in args and str(self.server_properties).encode() in args

    def _running_bootstrap(self) -> str:
        # The running JVM read this file at start, so it holds the ports actually in use.
        config = _read_text(self.server_properties) or ""
        match = re.search(r"^advertised\.listeners=(?:PLAINTEXT|SASL_SSL)://(\S+)$", config, re.MULTILINE)
        return match.group(1) if match else self.bootstrap

    # -- helpers ------------------------------------------------------------------------

    def _classpath(self) -> str:
        return str(self.lib_dir / "*")  # the JVM expands the wildcard itself

    def _log_flags(self) -> list[str]:
        return [
            f"-Dlog4j2.configurationFile={self.config_dir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.logs_dir}",
        ]

    def _log_excerpt(self) -> str:
        tails = {
            path: _tail(path, since=self._log_marks.get(path, 0)) for path in (self.server_log, self.jvm_out)
        }
        parts = [
            f"Last lines of {path}:\n{_last_lines(text)}" for path, text in tails.items() if text.strip()
        ]
        return "\n".join(parts) or f"Kafka wrote no log (expected at {self.server_log})."


# -- module helpers ---------------------------------------------------------------------


def find_pom() -> Path:
    """``deploy/kafka/pom.xml`` of the repository holding this package, or of the working directory."""
    starts = [Path(__file__).resolve().parent, Path.cwd().resolve()]
    for start in starts:
        for directory in (start, *start.parents):
            if (directory / POM_IN_REPO).is_file():
                return directory / POM_IN_REPO
    raise LocalKafkaError(
        f"{POM_IN_REPO} not found above {starts[0]} or {starts[1]}. Run from a Kaizen checkout, "
        "or set KAIZEN_KAFKA_BOOTSTRAP to use an existing Kafka cluster."
    )


def find_java() -> str:
    """The ``java`` of JAVA_HOME or PATH, checked to be recent enough for Kafka 4."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java or not os.access(java, os.X_OK):
        raise LocalKafkaError(
            f"Java {MIN_JAVA}+ is needed for the local Kafka broker but was not found "
            f"(looked in {'JAVA_HOME' if java_home else 'PATH'}). Install it (Debian: "
            "apt-get install openjdk-17-jre-headless) or set KAIZEN_KAFKA_BOOTSTRAP to an existing cluster."
        )
    output = subprocess.run(
        [java, "-version"], capture_output=True, text=True, timeout=60, check=False
    ).stderr
    match = re.search(r'version "(\d+)(?:\.(\d+))?', output)
    major = 0 if not match else int(match.group(2) or 0) if match.group(1) == "1" else int(match.group(1))
    if major < MIN_JAVA:
        raise LocalKafkaError(f"Kafka 4 needs Java {MIN_JAVA}+, but {java} is: {output.strip() or 'unknown'}")
    return java


def _jar_stamp(pom: Path) -> str:
    """What a finished fetch records: the Kafka version (for people) and the pom's hash (for us)."""
    text = pom.read_text()
    version = match.group(1) if (match := re.search(r"<kafka\.version>([^<]+)<", text)) else "unknown"
    digest = hashlib.sha256(text.encode()).hexdigest()
    return f"kafka.version={version}\npom.sha256={digest}\n"


def _run_maven(pom: Path, output_dir: Path) -> None:
    mvn = shutil.which("mvn")
    if mvn is None:
        raise LocalKafkaError(
            "Maven (mvn) is needed once to fetch the Kafka jars but is not on PATH. Install it "
            "(Debian: apt-get install maven) or set KAIZEN_KAFKA_BOOTSTRAP to an existing cluster."
        )
    command = [
        mvn,
        "-q",
        "-B",
        "-ntp",
        "-Dstyle.color=never",  # plain text in the error we show
        MAVEN_COPY_GOAL,
        f"-DoutputDirectory={output_dir}",
        "-DincludeScope=runtime",
        "-f",
        str(pom),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1800, check=False)
    if result.returncode != 0:
        raise LocalKafkaError(
            f"Maven could not fetch the Kafka jars (exit {result.returncode}). Check that Maven Central "
            "is reachable (proxies go in ~/.m2/settings.xml).\n"
            f"Command: {' '.join(command)}\n{_last_lines(result.stdout + result.stderr)}"
        )
    if not any(output_dir.glob("kafka_2.13-*.jar")):
        raise LocalKafkaError(f"Maven succeeded but put no kafka_2.13 jar in {output_dir}; is {pom} intact?")


def _remove_jar_dir(path: Path) -> None:
    # lib_dir can be passed in; never delete a directory that is not a jar cache.
    strays = [p.name for p in path.iterdir() if p.suffix != ".jar" and p.name != _JARS_COMPLETE]
    if strays:
        listed = ", ".join(strays[:5])
        raise LocalKafkaError(f"Refusing to replace {path}: it holds more than jars ({listed}).")
    shutil.rmtree(path)


async def _ready_or_exit(
    bootstrap: str, within: float, alive: Callable[[], bool], security: KafkaSecurity, brokers: int
) -> bool:
    """Wait for readiness; return True early if a process dies (no point waiting longer)."""

    async def until_dead() -> None:
        while alive():
            await asyncio.sleep(0.2)

    ready = asyncio.create_task(wait_ready(bootstrap, within, security=security, brokers=brokers))
    dead = asyncio.create_task(until_dead())
    await asyncio.wait({ready, dead}, return_when=asyncio.FIRST_COMPLETED)
    for task in (ready, dead):
        task.cancel()
    await asyncio.gather(ready, dead, return_exceptions=True)
    if ready.done() and not ready.cancelled():
        ready.result()  # re-raises KafkaNotReadyError
        return False
    return True


def _pid_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie (exited, not yet reaped) counts as gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _reap(pid: int) -> int | None:
    """Collect an exited child's status so no zombie stays behind; its exit code if it was ours."""
    # Called once the process is seen exiting ("Z" or "X"), so a blocking wait returns at
    # once; WNOHANG could run before the kernel made it a zombie and leave one behind.
    try:
        reaped, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return None  # started by another process (init reaps it) or already collected
    return os.waitstatus_to_exitcode(status) if reaped else None


def _all_pids() -> Iterator[int]:
    return (int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit())


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the JVM does: without SO_REUSEADDR, connections in TIME_WAIT from a broker
        # stopped a moment ago would make a free port look taken.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def _wait_until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield  # the lock goes with the closed file


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def _write_atomically(path: Path, text: str, mode: int = 0o644) -> None:
    # A name of its own per writer: concurrent writers never share (or trip over) a partial file.
    partial = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def _unlink_if_names(pid_file: Path, pid: int) -> None:
    if _read_text(pid_file) == f"{pid}\n":
        pid_file.unlink(missing_ok=True)


def _tail(path: Path, since: int = 0, max_bytes: int = 16_384) -> str:
    """The end of ``path`` (at most ``max_bytes``), never before offset ``since``."""
    try:
        with path.open("rb") as handle:
            handle.seek(max(_size(path) - max_bytes, since, 0))
            return handle.read().decode(errors="replace")
    except FileNotFoundError:
        return ""


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _last_lines(text: str, count: int = 25) -> str:
    return "\n".join("    " + line for line in text.strip().splitlines()[-count:])
