"""Load and crash testing of the annotation server over loopback (benchmark and tests share it).

``run_load`` starts ``rlhfkit serve`` in a child process on a fresh database (a SQLite path or a
PostgreSQL URL) and runs N simulated annotators that take an item and submit a ranking with a
client-generated id, thinking ``Exp(think_s)`` seconds between judgements (0: closed loop). The
annotators are coroutines on one asyncio loop in a background thread, each with its own
keep-alive connection: 200 OS threads cost the shared CPUs more than the server they measure.
If asked, the server's whole process group is SIGKILLed at random moments and restarted. A
submission whose response never arrived is retried with the same id until it is acknowledged
(201, or 200 for a retry of a stored one), so idempotency is exercised across crashes too.
Afterwards the database is opened directly and every acknowledged id is looked up: ``lost``
counts the ones missing.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import func, select

from rlhfkit.feedback import repo
from rlhfkit.feedback.db import Database
from rlhfkit.feedback.models import Judgement
from rlhfkit.schema import PreferenceItem, Response


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(db: str, n_annotators: int, n_items: int, k: int = 3, overlap: int = 3) -> tuple[int, list[str]]:
    """A project of synthetic items and annotator tokens in a new database (path or URL)."""
    database = Database(db)
    items = [PreferenceItem(id=f"q{i}", prompt=f"question {i}?",
                            responses=[Response(text=f"answer {j} to {i}" + " more" * j) for j in range(k)])
             for i in range(n_items)]
    with database.session() as s:
        p = repo.create_project(s, "load", overlap=overlap, lease_seconds=60)
        repo.import_items(s, p, [(it, f"synthetic:{n}") for n, it in enumerate(items)])
        tokens = [repo.add_annotator(s, f"sim{n:03d}")[1] for n in range(n_annotators)]
        pid = p.id
    database.close()
    return pid, tokens


def cpu_seconds(pid: int) -> float:
    """User+system CPU of a process and its live direct children (uvicorn workers), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")

    def one(p: int) -> tuple[int, float]:
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return -1, 0.0
        return int(fields[1]), (int(fields[11]) + int(fields[12])) / tick  # ppid, utime + stime

    total = one(pid)[1]
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != pid:
            ppid, cpu = one(int(entry))
            total += cpu if ppid == pid else 0.0
    return total


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (/proc/stat), to account what else ran."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # minus idle and iowait


class Server:
    """``rlhfkit serve`` in its own process group, so a kill takes every worker down at once."""

    def __init__(self, db: str, port: int, log: Path | None = None, sqlite_sync: str = "full", workers: int = 1):
        self.db, self.port, self.log, self.sqlite_sync, self.workers = db, port, log, sqlite_sync, workers
        self.proc: subprocess.Popen | None = None
        self.cpu_s_before_kills = 0.0  # CPU of server processes already killed

    @property
    def db_path(self) -> str:  # the old name
        return self.db

    def settle(self, timeout: float = 30.0) -> None:
        """Wait until an idle server stops using CPU: with several workers the first one answers
        health checks while the others are still importing, which would be billed to the load."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            before = self.cpu_s()
            time.sleep(0.5)
            if self.cpu_s() - before < 0.05:
                return

    def start(self, timeout: float = 60.0) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        cmd = [sys.executable, "-m", "rlhfkit.cli", "serve", "--db", self.db, "--port", str(self.port),
               "--sqlite-sync", self.sqlite_sync]
        if self.workers != 1:
            cmd += ["--workers", str(self.workers)]
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode} (log: {self.log})")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/api/health", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError("server did not start in time")

    def cpu_s(self) -> float:
        live = cpu_seconds(self.proc.pid) if self.proc and self.proc.poll() is None else 0.0
        return self.cpu_s_before_kills + live

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.cpu_s_before_kills += cpu_seconds(self.proc.pid)
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Results:
    acked: list[str] = field(default_factory=list)
    ack_times: list[float] = field(default_factory=list)  # perf_counter at acknowledgement
    latencies_s: list[float] = field(default_factory=list)  # submit round trips answered first try
    next_latencies_s: list[float] = field(default_factory=list)  # fetch-next round trips answered first try
    retries: int = 0  # submissions sent again after no answer or a 5xx
    next_failures: int = 0  # fetch-next requests with no answer, a timeout or a non-200
    errors: list[str] = field(default_factory=list)


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    """Sleep, but wake at once when the run stops."""
    if seconds > 0:
        try:
            await asyncio.wait_for(stop.wait(), seconds)
        except asyncio.TimeoutError:
            pass


def _client(base: str, token: str, tls: ssl.SSLContext) -> httpx.AsyncClient:
    # One shared SSL context (the URL is plain http anyway): httpx builds a new one per client
    # otherwise, ~50 ms of CPU each, 10 s for 200 annotators, stalling the loop that times them.
    return httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30.0, verify=tls,
                             limits=httpx.Limits(max_connections=1, max_keepalive_connections=1))


async def _annotator(c: httpx.AsyncClient, pid: int, stop: asyncio.Event, res: Results, rng: random.Random,
                     think_s: float) -> None:
    async with c:
        if think_s:
            await _pause(stop, rng.uniform(0, think_s))  # people do not all start in the same second
        while not stop.is_set():
            t0 = time.perf_counter()
            try:
                r = await c.get(f"/api/projects/{pid}/next")
                nxt = r.json() if r.status_code == 200 else None
            except (httpx.HTTPError, ValueError):
                nxt = None
            if nxt is None:  # counted, never silently left out of the latencies
                res.next_failures += 1
                await _pause(stop, 0.2)
                continue
            res.next_latencies_s.append(time.perf_counter() - t0)
            if nxt["done"]:
                return
            a = nxt["assignment"]
            order = rng.sample(range(len(a["responses"])), len(a["responses"]))
            body = {"id": uuid.uuid4().hex, "judgement": {"kind": "ranking", "tiers": [[i] for i in order]}}
            first, backoff = True, 0.05
            while True:  # until acknowledged; the same id makes retries safe
                t0 = time.perf_counter()
                try:
                    r = await c.post(f"/api/assignments/{a['assignment_id']}/judgement", json=body)
                except httpx.HTTPError:
                    r = None
                if r is None or r.status_code >= 500:
                    first = False
                    res.retries += 1
                    await asyncio.sleep(backoff)  # back off, as the page does, so a restarting server gets the CPU
                    backoff = min(0.5, backoff * 2)
                    continue
                if r.status_code in (200, 201):
                    res.acked.append(body["id"])
                    res.ack_times.append(time.perf_counter())
                    if first:
                        res.latencies_s.append(time.perf_counter() - t0)
                else:
                    res.errors.append(f"{r.status_code} {r.text[:200]}")
                break
            if think_s:
                await _pause(stop, rng.expovariate(1.0 / think_s))


class _Clients:
    """The annotators on an event loop in a background thread; ``stop()`` waits for them."""

    def __init__(self, base: str, tokens: list[str], pid: int, res: Results, seed: int, think_s: float):
        self.loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self.tasks: list[asyncio.Task] = []

        tls = ssl.create_default_context()
        conns = [_client(base, t, tls) for t in tokens]

        async def main() -> None:
            self.tasks = [asyncio.ensure_future(_annotator(c, pid, self._stop, res, random.Random(seed + n), think_s))
                          for n, c in enumerate(conns)]
            await asyncio.gather(*self.tasks, return_exceptions=True)

        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(main(),), daemon=True)

    def start(self) -> None:
        self.thread.start()

    def alive(self) -> int:
        return sum(not t.done() for t in self.tasks)

    def stop(self, timeout_s: float = 60.0) -> int:
        """Stop asking for work, wait for answers in flight; the number of annotators still running."""
        self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(timeout_s)
        return self.alive()


def _wait_for(cond, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.01)


def run_load(db_path: str, n_clients: int, n_items: int, duration_s: float, kills: int = 0, seed: int = 0,
             log: Path | None = None, sqlite_sync: str = "full", think_s: float = 0.0, workers: int = 1) -> dict:
    """Run clients for duration_s (spreading `kills` SIGKILL+restart over it); verify the DB.

    ``db_path`` is a SQLite path or a URL of an empty PostgreSQL database."""
    rng = random.Random(seed)
    pid, tokens = prepare(db_path, n_clients, n_items)
    server = Server(db_path, free_port(), log, sqlite_sync, workers)
    server.start()
    server.settle()
    res = Results()
    clients = _Clients(f"http://127.0.0.1:{server.port}", tokens, pid, res, seed, think_s)
    cpu0, busy0, t0 = time.process_time(), machine_busy_seconds(), time.perf_counter()
    clients.start()
    restart_s, kill_at, back_at = [], [], []
    for _ in range(kills):
        # a random moment while submissions are flowing (at least one ack since the last restart)
        _wait_for(lambda: any(t > (back_at[-1] if back_at else 0) for t in res.ack_times[-50:]), 30.0)
        time.sleep(rng.uniform(0.0, 2 * duration_s / max(kills, 1)))
        kill_at.append(time.perf_counter())
        server.kill()
        server.start()
        back_at.append(time.perf_counter())
        restart_s.append(back_at[-1] - kill_at[-1])
    time.sleep(max(0.0, duration_s - (time.perf_counter() - t0)))
    if kills:  # let clients show that the restarted server takes their work
        _wait_for(lambda: any(t > back_at[-1] for t in res.ack_times[-50:]), 30.0)
    alive = clients.stop()
    elapsed = time.perf_counter() - t0
    cpu = {"client_cpu_s": time.process_time() - cpu0, "server_cpu_s": server.cpu_s(),
           "machine_busy_s": machine_busy_seconds() - busy0}
    server.stop()
    acked = list(res.acked)
    return {**verify(db_path, acked), "elapsed_s": elapsed, "latencies_s": list(res.latencies_s),
            "next_latencies_s": list(res.next_latencies_s), **cpu,
            "retries": res.retries, "next_failures": res.next_failures, "errors": list(res.errors), "kills": kills, "restart_s": restart_s,
            "clients_alive": alive,
            "acked_before_first_kill": sum(t < kill_at[0] for t in res.ack_times) if kills else len(acked),
            "acked_after_last_restart": sum(t > back_at[-1] for t in res.ack_times) if kills else len(acked)}


def verify(db: str, acked: list[str]) -> dict:
    """Look every acknowledged id up in the database (path or URL): ``lost`` counts the missing."""
    database = Database(db)
    with database.read() as s:
        stored = set(s.scalars(select(Judgement.client_id)))
        total = s.scalar(select(func.count(Judgement.id)))
        per_assignment = s.scalar(select(func.count(func.distinct(Judgement.assignment_id))))
    database.close()
    lost = [j for j in acked if j not in stored]
    return {"acked": len(acked), "acked_unique": len(set(acked)), "stored": total, "lost": len(lost),
            "lost_ids": lost[:10], "one_per_assignment": per_assignment == total}
