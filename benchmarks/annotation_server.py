"""Annotation server under load over loopback: latency, throughput and kill -9 rounds, per database.

Runs `rlhfkit serve` (a child process) against SQLite (WAL, `--sqlite-sync full`: an fsync per
acknowledged commit) and/or PostgreSQL (a throwaway cluster started here in a temp folder with
fsync on, and removed afterwards), with N simulated annotators (asyncio coroutines, one
keep-alive connection each) that fetch the next item and submit a ranking:

  1. steady (closed loop, no think time): everyone submits as fast as the server answers;
     judgements/s at saturation (latency there is queueing: clients / throughput).
  2. paced: the annotators think ~Exp(mean --think-s) between judgements: the latency a person
     feels while the others work. The p99 goal (submit < 50 ms at 200 annotators) is about this.
  3. crash: --kill-rounds SIGKILLs of the whole server at random moments while submissions flow,
     each followed by a restart; afterwards every acknowledged id is looked up in the database.

Each row also says where the CPU went: the client process (the simulated annotators), the
server processes, and the rest of the machine (PostgreSQL's backends, and anything else running).

    flock /tmp/rlhfkit-heavy.lock nice -n 0 python benchmarks/annotation_server.py --db both
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from rlhfkit.feedback.loadtest import run_load
from rlhfkit.feedback.throwaway_postgres import ThrowawayPostgres


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(np.array(values) * 1000, q)), 1) if values else None


def _summary(db: str, phase: str, out: dict) -> dict:
    el = out["elapsed_s"]
    return {"db": db, "phase": phase, "acked": out["acked"], "judgements_per_s": round(out["acked"] / el, 1),
            "next_p50_ms": _pct(out["next_latencies_s"], 50), "next_p99_ms": _pct(out["next_latencies_s"], 99),
            "submit_p50_ms": _pct(out["latencies_s"], 50), "submit_p99_ms": _pct(out["latencies_s"], 99),
            "lost": out["lost"], "errors": len(out["errors"]),
            # requests that got no timely answer: not in the latencies, so they must be shown
            "submit_retries": out["retries"], "next_failures": out["next_failures"],
            # cores used on average over the phase
            "client_cores": round(out["client_cpu_s"] / el, 2), "server_cores": round(out["server_cpu_s"] / el, 2),
            "other_cores": round(max(0.0, out["machine_busy_s"] - out["client_cpu_s"] - out["server_cpu_s"]) / el, 2)}


def _phases(db: str, new_db, args, tmp: Path, workers: int) -> list[dict]:
    """steady, paced (one per think time) and crash phases, each on a fresh database from new_db(name)."""
    rows, c = [], args.clients
    if args.steady_s > 0:
        out = run_load(new_db("steady"), c, args.items, args.steady_s, seed=args.seed, workers=workers)
        rows.append(_summary(db, f"steady, {c} clients, no think time", out))
        print(json.dumps(rows[-1]), flush=True)
    for think in args.think_s:
        out = run_load(new_db(f"paced{int(think * 10)}"), c, args.items, args.paced_s, seed=args.seed,
                       think_s=think, workers=workers)
        rows.append(_summary(db, f"paced, {c} clients, think ~Exp({think:g} s)", out))
        print(json.dumps(rows[-1]), flush=True)
    if args.kill_rounds == 0:
        return rows
    out = run_load(new_db("crash"), c, args.items, duration_s=args.crash_s_per_round * args.kill_rounds,
                   kills=args.kill_rounds, seed=args.seed, log=tmp / f"crash-server-{db.replace(' ', '').replace(',', '-')}.log", workers=workers,
                   think_s=args.crash_think_s)
    row = _summary(db, f"crash, {c} clients, {args.kill_rounds} x kill -9 + restart", out)
    row.update(kills=out["kills"], stored=out["stored"],
               acked_unique=out["acked_unique"], one_per_assignment=out["one_per_assignment"],
               mean_restart_s=round(float(np.mean(out["restart_s"])), 2) if out["restart_s"] else None,
               clients_alive=out["clients_alive"])
    rows.append(row)
    print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--items", type=int, default=4000)
    ap.add_argument("--steady-s", type=float, default=20.0, help="length of the saturation phase (0: skip it)")
    ap.add_argument("--paced-s", type=float, default=60.0, help="length of each paced phase")
    ap.add_argument("--think-s", type=lambda s: [float(x) for x in s.split(",")], default=[20.0, 5.0],
                    help="comma list: mean pause between a person's judgements, one paced phase each")
    ap.add_argument("--kill-rounds", type=int, default=10, help="0: skip the crash phase")
    ap.add_argument("--crash-s-per-round", type=float, default=3.0)
    ap.add_argument("--crash-think-s", type=float, default=0.0, help="think time in the crash phase (0: flat out)")
    ap.add_argument("--pg-workers", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2],
                    help="comma list: server processes against PostgreSQL, one set of phases each")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="rlhfkit-bench-"))
    rows = []
    if args.db in ("sqlite", "both"):
        rows += _phases("sqlite", lambda name: str(tmp / f"{name}.db"), args, tmp, workers=1)
    if args.db in ("postgres", "both"):
        with ThrowawayPostgres(fsync=True, max_connections=300) as pg:
            for w in args.pg_workers:
                rows += _phases(f"postgres, {w} worker{'s' if w > 1 else ''}",
                                lambda name, w=w: pg.create_database(f"{name}_w{w}"), args, tmp, workers=w)
    print("\n| db | phase | acked | judgements/s | next p50 / p99 ms | submit p50 / p99 ms | lost "
          "| CPU cores: clients / server / other |\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['db']} | {r['phase']} | {r['acked']} | {r['judgements_per_s']} | {r['next_p50_ms']} / "
              f"{r['next_p99_ms']} | {r['submit_p50_ms']} / {r['submit_p99_ms']} | {r['lost']} | "
              f"{r['client_cores']} / {r['server_cores']} / {r['other_cores']} |")


if __name__ == "__main__":
    main()
