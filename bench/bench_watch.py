"""The watcher's numbers (issue 9, section 3).

1. Recording: sessions/s with 10 spans each through the watcher's recorder (its store thread,
   batches with the stream position in the same transaction) beside the records store's raw
   batched upsert of the same records (`RecordsStore.write`, batch 500). Target >= 2,000/s.
2. Flag -> incident: a real `agentops watch` process follows a real runtime on loopback;
   runaway loops in separate sessions; from each flag's own time to (a) its incident row in
   the governance DB and (b) its webhook at a real local receiver. Target p95 < 1 s.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.watch.receiver import running_receiver
from tests.watch.test_watcher_process import new_runtime, runaway, url_of

from agentops_console.governance.api import open_governance
from agentops_console.governance.clock import parse_ts
from agentops_console.protocol.client import AsyncAgentClient
from agentops_console.protocol.records import SessionRecord
from agentops_console.records.store import open_store
from agentops_console.watch.recorder import AgentTrack, Recorder, StoreThread, _End
from bench.bench_records import make

SESSIONS = 4000
FLAGS = 20


def raw_rate(records: list[SessionRecord], path: Path) -> float:
    with open_store(path, writer=True, create=True) as store:
        t0 = time.perf_counter()
        store.write(records, batch_size=500)
        return len(records) / (time.perf_counter() - t0)


async def _recorder_rate(records: list[SessionRecord], path: Path) -> float:
    thread = StoreThread()
    await thread.open(path)
    recorder = Recorder(thread, batch=500)
    client = AsyncAgentClient("http://127.0.0.1:9", None)  # never called: fetches are done
    track: AgentTrack = recorder.track("it-support", client)
    track.name = "it-support"

    async def ready(record: SessionRecord) -> SessionRecord | None:
        return record

    t0 = time.perf_counter()
    for seq, record in enumerate(records, 1):
        task = asyncio.create_task(ready(record))
        track.ends.append(_End(seq, record.session_id, None, task))
        track.last_seq = seq
    await asyncio.sleep(0)  # let every "fetch" finish
    while track.ends:
        assert await recorder.flush()
    rate = len(records) / (time.perf_counter() - t0)
    await client.aclose()
    await thread.close()
    return rate


def recording(tmp: Path) -> tuple[float, float]:
    records = make(SESSIONS)
    raw = raw_rate(records, tmp / "raw.db")
    ours = asyncio.run(_recorder_rate(records, tmp / "watch.db"))
    return ours, raw


def flag_to_incident(tmp: Path) -> tuple[list[float], list[float]]:
    gov = tmp / "governance.db"
    open_governance(gov, create=True).close()
    rt = new_runtime()
    incident_s: dict[int, float] = {}
    page_s: list[float] = []
    with running_receiver() as receiver:
        config = tmp / "watch.toml"
        config.write_text(f'[[sink]]\nkind = "webhook"\nurl = "{receiver.url("/hook")}"\n')
        env = {**os.environ, "BENCH_TOKEN": rt.token}
        watcher = subprocess.Popen(
            [
                *(sys.executable, "-m", "agentops_console.cli.main", "watch"),
                *("--records", str(tmp / "records.db"), "--db", str(gov), "--config", str(config)),
                *("--endpoint", url_of(rt), "--token-env", "BENCH_TOKEN"),
            ],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert watcher.stderr is not None
        while "live (first)" not in watcher.stderr.readline():
            pass
        offset = time.time() - time.monotonic()  # receiver times are monotonic
        conn = sqlite3.connect(gov)
        try:
            for _ in range(FLAGS):
                sid = runaway(rt)
                detail = rt.session_detail(sid)
                assert detail is not None
                flag_at = next(f.at for f in detail.flags if f.kind == "runaway_loop").timestamp()
                deadline = time.time() + 10
                while time.time() < deadline:
                    row = conn.execute(
                        "SELECT id FROM incidents WHERE session_id = ?", (sid,)
                    ).fetchone()
                    if row is not None:
                        incident_s[row[0]] = time.time() - flag_at
                        break
                    time.sleep(0.002)
                while time.time() < deadline:
                    pages = [r for r in receiver.at("/hook") if r.body["session_id"] == sid]
                    if pages:
                        page_s.append(pages[0].at + offset - flag_at)
                        break
                    time.sleep(0.002)
                detected = conn.execute(
                    "SELECT detected_at FROM incidents WHERE session_id = ?", (sid,)
                ).fetchone()
                assert detected and abs(parse_ts(detected[0]).timestamp() - flag_at) < 1e-3
        finally:
            conn.close()
            watcher.send_signal(signal.SIGTERM)
            watcher.wait(30)
            rt.stop()
    return list(incident_s.values()), page_s


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        ours, raw = recording(Path(tmp))
        print(f"recording, {SESSIONS} sessions x 10 spans, batch 500")
        print(f"  watcher recorder    {ours:8.0f} sessions/s   (target >= 2,000)")
        print(f"  store.write (raw)   {raw:8.0f} sessions/s   ratio {ours / raw:.2f}")
        incidents, pages = flag_to_incident(Path(tmp))
    print(f"flag -> incident / webhook, {FLAGS} runaway loops, real watcher process")
    for name, values in (("incident row", incidents), ("webhook", pages)):
        if len(values) < FLAGS:
            print(f"  {name}: only {len(values)} of {FLAGS} arrived")
            return 1
        print(
            f"  {name:13s} p50 {statistics.median(values) * 1000:6.0f} ms"
            f"   p95 {_pct(values, 0.95) * 1000:6.0f} ms   (target p95 < 1 s)"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
