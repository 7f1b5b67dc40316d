"""kill -9 durability: every acknowledged judgement survives a SIGKILL of the server."""

import pytest

from rlhfkit.feedback.loadtest import run_load


@pytest.mark.parametrize("sqlite_sync", ["full", "normal"])
def test_sigkill_loses_no_acknowledged_judgement(tmp_path, sqlite_sync):
    # two kill rounds in CI (one server, killed and restarted twice); the benchmark runs >= 10.
    # normal (no fsync per commit) must survive a killed process too: the WAL is in the OS cache.
    out = run_load(str(tmp_path / "f.db"), n_clients=10, n_items=300, duration_s=1.5, kills=2, seed=1,
                   log=tmp_path / "server.log", sqlite_sync=sqlite_sync)
    assert out["errors"] == []
    # the clients really were submitting on both sides of the kill
    assert out["acked_before_first_kill"] > 0 and out["acked_after_last_restart"] > 0, out
    assert out["acked"] == out["acked_unique"]  # each id acknowledged once to its client
    assert out["lost"] == 0, out["lost_ids"]
    assert out["stored"] >= out["acked"] and out["one_per_assignment"]
    assert out["clients_alive"] == 0 and out["kills"] == 2
