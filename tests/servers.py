"""Real servers for the slow tests: an MLflow tracking server and a PostgreSQL server, each on
127.0.0.1 and a free port, started for a test (or a session) and stopped by its own PID.

PostgreSQL comes from the system (Debian's ``postgresql`` package: ``/usr/lib/postgresql/<v>/bin``,
or ``initdb`` on the PATH); without it the tests that need it skip. It refuses to run as root,
so as root (CI) its processes run as the ``postgres`` user the package creates, else as
``nobody``, in a temp folder of theirs; as anyone else they run as that user.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """A real ``mlflow server`` on 127.0.0.1: proxied artifacts in a folder, and a sqlite
    backend store unless ``backend`` names another (``postgresql://...``)."""

    def __init__(self, root: Path, port: int | None = None, backend: str | None = None):
        self.root = root
        self.port = port or free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.backend = backend or f"sqlite:///{root / 'server.db'}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 90) -> MlflowServer:
        """Start it and wait until ``/health`` answers."""
        self.root.mkdir(parents=True, exist_ok=True)
        log = self.root / "server.log"
        with open(log, "ab") as err:
            self.proc = subprocess.Popen(
                [
                    *(sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port)),
                    *("--backend-store-uri", self.backend),
                    *("--artifacts-destination", str(self.root / "artifacts"), "--workers", "1"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,  # it leads its own process group: stop() ends its workers too
            )
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert self.proc.poll() is None, log.read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"mlflow server did not answer /health in {timeout} s")

    def stop(self) -> None:
        """Stop it by its PID (and its workers: it leads its own process group)."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


def postgres_bindir() -> Path | None:
    """The folder of PostgreSQL's server programs (newest Debian version first), None without one."""
    version = lambda p: tuple(int(x) for x in Path(p).parts[-3].split(".") if x.isdigit())  # noqa: E731
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
    initdb = found[-1] if found else shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PostgresServer:
    """A throwaway PostgreSQL cluster: a temp data folder, TCP on 127.0.0.1 only (no Unix
    socket), one password-authenticated superuser (scram-sha-256), the given databases."""

    user = "fer_exp"
    password = "pg-s3cret-pw"

    def __init__(self, bindir: Path, databases: tuple[str, ...] = ("optuna", "mlflow")):
        self.bindir = bindir
        self.databases = databases
        self.port = free_port()
        self.owner = _unprivileged_owner()
        # as root, in /tmp: a $TMPDIR below /root would be out of the server user's reach
        self.root = Path(tempfile.mkdtemp(prefix="fer_exp_pg_", dir="/tmp" if self.owner else None))
        self.data = self.root / "data"

    def url(self, database: str, password: str | None = None, driver: str = "postgresql+psycopg2") -> str:
        """``postgresql+psycopg2://fer_exp:<password>@127.0.0.1:<port>/<database>`` (another password:
        a wrong one). The driver is named: SQLAlchemy 2.1's plain ``postgresql://`` means psycopg 3,
        and MLflow 3.17's server fails on SQLAlchemy 2.1 with psycopg 3 (tried)."""
        return f"{driver}://{self.user}:{password or self.password}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> str:
        """A server program of this cluster as its owner; its output, or an error with it."""
        kw: dict = {"user": self.owner[0], "group": self.owner[1], "extra_groups": []} if self.owner else {}
        env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C", "HOME": str(self.root)}
        proc = subprocess.run(
            [str(self.bindir / args[0]), *args[1:]], cwd=self.root, env=env, capture_output=True, text=True, **kw
        )
        if proc.returncode != 0:
            log = self.root / "server.log"
            server_log = log.read_text() if log.exists() else ""
            raise RuntimeError(f"{args[0]} failed:\n{proc.stdout}{proc.stderr}{server_log}")
        return proc.stdout

    def start(self) -> PostgresServer:
        """initdb, start (waits until it accepts connections), create the databases."""
        import psycopg2

        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.owner:  # the folder mkdtemp made is root's, mode 700
            for path in (self.root, pwfile):
                os.chown(path, *self.owner)
        self._run("initdb", "-D", str(self.data), "-U", self.user, f"--pwfile={pwfile}", "--auth=scram-sha-256")
        opts = f"-h 127.0.0.1 -p {self.port} -c unix_socket_directories='' -c fsync=off -c max_connections=100"
        log = str(self.root / "server.log")
        self._run("pg_ctl", "start", "--wait", "--timeout=60", "-D", str(self.data), "-l", log, "-o", opts)
        conn = psycopg2.connect(self.url("postgres", driver="postgresql"))
        conn.autocommit = True  # CREATE DATABASE cannot run in a transaction
        with conn.cursor() as cur:
            for name in self.databases:
                cur.execute(f"CREATE DATABASE {name}")
        conn.close()
        return self

    def stop(self) -> None:
        """Stop the cluster (its postmaster's PID, if pg_ctl cannot) and remove its folder."""
        try:
            self._run("pg_ctl", "stop", "-w", "-m", "immediate", "-D", str(self.data))
        except RuntimeError:
            pid_file = self.data / "postmaster.pid"
            if pid_file.exists():
                os.kill(int(pid_file.read_text().split()[0]), signal.SIGKILL)
        shutil.rmtree(self.root, ignore_errors=True)


def _unprivileged_owner() -> tuple[int, int] | None:
    """(uid, gid) to run PostgreSQL as when this process is root: ``postgres``, else ``nobody``."""
    if os.geteuid() != 0:
        return None
    import pwd

    for name in ("postgres", "nobody"):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return entry.pw_uid, entry.pw_gid
    raise RuntimeError("running as root, and neither a 'postgres' nor a 'nobody' user to run PostgreSQL as")
