"""Annotation server under load over loopback: latency, throughput, and kill -9 rounds.

Runs `rlhfkit serve` (a child process, SQLite in WAL mode) and N simulated annotators (threads,
one keep-alive connection each) that take an item and submit a ranking, once per `--sqlite-sync`
mode (full: an fsync per acknowledged commit, the default; normal: WAL without it, which survives
a killed server but not a power cut):

  1. steady (closed loop, no think time): every client submits as fast as the server answers;
     submit latency p50/p99 and judgements/s at saturation.
  2. paced: the same clients think for an exponential time (mean --think-s) between judgements,
     the latency a person would feel while others work.
  3. crash: `--kill-rounds` SIGKILLs at random moments while submissions flow, each followed by
     a restart; afterwards every acknowledged id is looked up in the database (lost must be 0).

    flock /tmp/rlhfkit-heavy.lock env OMP_NUM_THREADS=2 python benchmarks/annotation_server.py
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import numpy as np

from rlhfkit.feedback.loadtest import Server, free_port, prepare, run_load, verify


def _paced(db_path: str, clients: int, items: int, duration_s: float, think_s: float, seed: int,
           sqlite_sync: str) -> dict:
    pid, tokens = prepare(db_path, clients, items)
    server = Server(db_path, free_port(), sqlite_sync=sqlite_sync)
    server.start()
    lat, acked, lock, stop = [], [], threading.Lock(), threading.Event()

    def annotator(token: str, rng: random.Random) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{server.port}", timeout=30,
                          headers={"Authorization": f"Bearer {token}"}) as c:
            time.sleep(rng.uniform(0, think_s))
            while not stop.is_set():
                nxt = c.get(f"/api/projects/{pid}/next").json()
                if nxt["done"]:
                    return
                a = nxt["assignment"]
                body = {"id": uuid.uuid4().hex, "judgement": {"kind": "ranking", "tiers": [[r["index"]] for r in a["responses"]]}}
                t0 = time.perf_counter()
                r = c.post(f"/api/assignments/{a['assignment_id']}/judgement", json=body)
                with lock:
                    lat.append(time.perf_counter() - t0)
                    if r.status_code in (200, 201):
                        acked.append(body["id"])
                time.sleep(rng.expovariate(1.0 / think_s))

    threads = [threading.Thread(target=annotator, args=(t, random.Random(seed + n))) for n, t in enumerate(tokens)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    time.sleep(duration_s)
    stop.set()
    for th in threads:
        th.join(60)
    elapsed = time.perf_counter() - t0
    server.stop()
    return {**verify(db_path, acked), "latencies_s": lat, "elapsed_s": elapsed}


def _summary(name: str, out: dict) -> dict:
    lat = np.array(out["latencies_s"]) * 1000
    row = {"phase": name, "acked": out["acked"], "judgements_per_s": round(out["acked"] / out["elapsed_s"], 1),
           "submit_p50_ms": round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
           "submit_p99_ms": round(float(np.percentile(lat, 99)), 1) if len(lat) else None, "lost": out["lost"]}
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--items", type=int, default=3000)
    ap.add_argument("--duration-s", type=float, default=20.0)
    ap.add_argument("--think-s", type=float, default=5.0, help="mean pause between a client's judgements (paced phase)")
    ap.add_argument("--kill-rounds", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sqlite-sync", default="full,normal", help="comma list of SQLite modes to measure")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rlhfkit-bench-"))
    rows = []
    for sync in args.sqlite_sync.split(","):
        for r in (
            _summary(f"{sync}: steady, {args.clients} clients, no think time",
                     run_load(str(tmp / f"steady-{sync}.db"), args.clients, args.items, args.duration_s,
                              seed=args.seed, sqlite_sync=sync)),
            _summary(f"{sync}: paced, {args.clients} clients, think ~Exp({args.think_s}s)",
                     _paced(str(tmp / f"paced-{sync}.db"), args.clients, args.items, args.duration_s, args.think_s,
                            args.seed, sync)),
        ):
            print(json.dumps(r), flush=True)
            rows.append(r)
        crash = run_load(str(tmp / f"crash-{sync}.db"), args.clients, args.items, duration_s=2.0 * args.kill_rounds,
                         kills=args.kill_rounds, seed=args.seed, log=tmp / f"crash-server-{sync}.log", sqlite_sync=sync)
        row = _summary(f"{sync}: crash, {args.clients} clients, {args.kill_rounds} x kill -9 + restart", crash)
        row.update(kills=crash["kills"], retries_after_kill=crash["retries"], errors=len(crash["errors"]),
                   mean_restart_s=round(float(np.mean(crash["restart_s"])), 2), stored=crash["stored"])
        print(json.dumps(row), flush=True)
        rows.append(row)
    print("\n| phase | acked | judgements/s | submit p50 ms | submit p99 ms | lost |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['phase']} | {r['acked']} | {r['judgements_per_s']} | {r['submit_p50_ms']} | {r['submit_p99_ms']} | {r['lost']} |")


if __name__ == "__main__":
    main()
