"""A throwaway PostgreSQL cluster in a temporary folder, for the tests and the load benchmark.

``initdb`` + ``pg_ctl start`` on a free port with trust auth, listening on 127.0.0.1 only;
``stop()`` shuts it down (fast mode) and removes the folder. As root, the server binaries run as
the ``postgres`` user (initdb refuses root), and the folder lives directly under /tmp because a
0700 parent (pytest's ``tmp_path``) is unreachable for that user.

``fsync=False`` (the tests' choice) trades crash safety of the whole machine for speed; the
benchmark keeps PostgreSQL's default (fsync on, synchronous commit), so an acknowledged
judgement is on disk as with SQLite's ``synchronous=FULL``.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile


def server_bins() -> list[str]:
    """PostgreSQL server bin folders, oldest version first."""
    return sorted(glob.glob("/usr/lib/postgresql/*/bin"),
                  key=lambda p: [int(x) for x in p.split("/")[4].split(".") if x.isdigit()])


def unavailable_reason() -> str | None:
    """Why a throwaway cluster cannot be started here, or None if it can."""
    if not server_bins():
        return "no PostgreSQL server binaries (/usr/lib/postgresql/*/bin); `make system-deps` installs them"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser to start postgres as the postgres user"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (web extra)"
    return None


class ThrowawayPostgres:
    """``with ThrowawayPostgres() as pg: url = pg.create_database("feedback")``."""

    def __init__(self, fsync: bool = False, max_connections: int = 100):
        self.fsync, self.max_connections = fsync, max_connections
        self.tmp: str | None = None
        self.port = 0
        self._bin = server_bins()[-1] if server_bins() else ""
        self._as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run([*self._as_pg, f"{self._bin}/{tool}", *args], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{tool} failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")

    def start(self) -> "ThrowawayPostgres":
        reason = unavailable_reason()
        if reason:
            raise RuntimeError(reason)
        self.tmp = tempfile.mkdtemp(prefix="pgtest.", dir="/tmp")
        if os.geteuid() == 0:
            shutil.chown(self.tmp, "postgres", "postgres")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        data = f"{self.tmp}/data"
        self._run("initdb", "-D", data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale", "--no-sync")
        opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.tmp} -c fsync={'on' if self.fsync else 'off'}"
                f" -c max_connections={self.max_connections}")
        self._run("pg_ctl", "-D", data, "-l", f"{self.tmp}/server.log", "-w", "-t", "30", "-o", opts, "start")
        return self

    def create_database(self, name: str) -> str:
        """A new, empty database; its SQLAlchemy URL."""
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.tmp is None:
            return
        subprocess.run([*self._as_pg, f"{self._bin}/pg_ctl", "-D", f"{self.tmp}/data", "-m", "fast", "stop"],
                       capture_output=True)
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp = None

    def __enter__(self) -> "ThrowawayPostgres":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
