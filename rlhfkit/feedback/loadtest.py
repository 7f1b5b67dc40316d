"""Load and crash testing of the annotation server over loopback (benchmark and tests share it).

``run_load`` starts ``rlhfkit serve`` in a child process on a fresh SQLite database, runs N
simulated annotators (one thread and one keep-alive HTTP connection each) that take an item and
submit a ranking with a client-generated id, and, if asked, SIGKILLs the server at random
moments and restarts it. A submission whose response never arrived is retried with the same id
until it is acknowledged (the server answers 201 or, for a retry of a stored one, 200), so
idempotency is exercised across crashes too. Afterwards the database is opened directly and
every acknowledged id is looked up: ``lost`` counts the ones missing.
"""

from __future__ import annotations

import os
import random
import signal
import socket
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


def prepare(db_path: str, n_annotators: int, n_items: int, k: int = 3, overlap: int = 3) -> tuple[int, list[str]]:
    """A project of synthetic items and annotator tokens in a new database."""
    db = Database(db_path)
    items = [PreferenceItem(id=f"q{i}", prompt=f"question {i}?",
                            responses=[Response(text=f"answer {j} to {i}" + " more" * j) for j in range(k)])
             for i in range(n_items)]
    with db.session() as s:
        p = repo.create_project(s, "load", overlap=overlap, lease_seconds=60)
        repo.import_items(s, p, [(it, f"synthetic:{n}") for n, it in enumerate(items)])
        tokens = [repo.add_annotator(s, f"sim{n:03d}")[1] for n in range(n_annotators)]
        pid = p.id
    db.close()
    return pid, tokens


class Server:
    def __init__(self, db_path: str, port: int, log: Path | None = None, sqlite_sync: str = "full"):
        self.db_path, self.port, self.log, self.sqlite_sync = db_path, port, log, sqlite_sync
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rlhfkit.cli", "serve", "--db", self.db_path, "--port", str(self.port),
             "--sqlite-sync", self.sqlite_sync],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )
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

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Results:
    acked: list[str] = field(default_factory=list)
    ack_times: list[float] = field(default_factory=list)  # perf_counter at acknowledgement
    latencies_s: list[float] = field(default_factory=list)  # submit round trips answered first try
    retries: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _annotator(base: str, token: str, pid: int, stop: threading.Event, res: Results, rng: random.Random) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30.0) as c:
        while not stop.is_set():
            try:
                nxt = c.get(f"/api/projects/{pid}/next").json()
            except (httpx.HTTPError, ValueError):
                time.sleep(0.2)
                continue
            if nxt.get("done", True):
                return
            a = nxt["assignment"]
            order = rng.sample(range(len(a["responses"])), len(a["responses"]))
            body = {"id": uuid.uuid4().hex, "judgement": {"kind": "ranking", "tiers": [[i] for i in order]}}
            first, backoff = True, 0.05
            while True:  # until acknowledged; the same id makes retries safe
                t0 = time.perf_counter()
                try:
                    r = c.post(f"/api/assignments/{a['assignment_id']}/judgement", json=body)
                except httpx.HTTPError:
                    first = False
                    with res.lock:
                        res.retries += 1
                    time.sleep(backoff)  # back off, as the page does, so a restarting server gets the CPU
                    backoff = min(0.5, backoff * 2)
                    continue
                if r.status_code >= 500:
                    first = False
                    time.sleep(backoff)
                    backoff = min(0.5, backoff * 2)
                    continue
                with res.lock:
                    if r.status_code in (200, 201):
                        res.acked.append(body["id"])
                        res.ack_times.append(time.perf_counter())
                        if first:
                            res.latencies_s.append(time.perf_counter() - t0)
                    else:
                        res.errors.append(f"{r.status_code} {r.text[:200]}")
                break


def _wait_for(cond, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.01)


def run_load(db_path: str, n_clients: int, n_items: int, duration_s: float, kills: int = 0,
             seed: int = 0, log: Path | None = None, sqlite_sync: str = "full") -> dict:
    """Run clients for duration_s (spreading `kills` SIGKILL+restart over it); verify the DB."""
    rng = random.Random(seed)
    pid, tokens = prepare(db_path, n_clients, n_items)
    server = Server(db_path, free_port(), log, sqlite_sync)
    server.start()
    base = f"http://127.0.0.1:{server.port}"
    stop, res = threading.Event(), Results()
    threads = [threading.Thread(target=_annotator, args=(base, t, pid, stop, res, random.Random(seed + n)), daemon=True)
               for n, t in enumerate(tokens)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    restart_s, kill_at, back_at = [], [], []
    for _ in range(kills):
        # a random moment while submissions are flowing (at least one ack since the last restart)
        _wait_for(lambda: any(t > (back_at[-1] if back_at else 0) for t in res.ack_times), 30.0)
        time.sleep(rng.uniform(0.0, 2 * duration_s / max(kills, 1)))
        kill_at.append(time.perf_counter())
        server.kill()
        server.start()
        back_at.append(time.perf_counter())
        restart_s.append(back_at[-1] - kill_at[-1])
    time.sleep(max(0.0, duration_s - (time.perf_counter() - t0)))
    if kills:  # let clients show that the restarted server takes their work
        _wait_for(lambda: any(t > back_at[-1] for t in res.ack_times), 30.0)
    stop.set()
    for th in threads:
        th.join(60)
    elapsed = time.perf_counter() - t0
    server.stop()
    return {**verify(db_path, res.acked), "elapsed_s": elapsed, "latencies_s": res.latencies_s,
            "retries": res.retries, "errors": res.errors, "kills": kills, "restart_s": restart_s,
            "clients_alive": sum(th.is_alive() for th in threads),
            "acked_before_first_kill": sum(t < kill_at[0] for t in res.ack_times) if kills else len(res.acked),
            "acked_after_last_restart": sum(t > back_at[-1] for t in res.ack_times) if kills else len(res.acked)}


def verify(db_path: str, acked: list[str]) -> dict:
    db = Database(db_path)
    with db.read() as s:
        stored = set(s.scalars(select(Judgement.client_id)))
        total = s.scalar(select(func.count(Judgement.id)))
        per_assignment = s.scalar(select(func.count(func.distinct(Judgement.assignment_id))))
    db.close()
    lost = [j for j in acked if j not in stored]
    return {"acked": len(acked), "acked_unique": len(set(acked)), "stored": total, "lost": len(lost),
            "lost_ids": lost[:10], "one_per_assignment": per_assignment == total}
