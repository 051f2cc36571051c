"""How fast the demo comes alive, how quickly trouble is seen and answered, how it stops.

Issue 5 promises live sessions within 10 seconds of `agentops demo`; this measures the
parts of that the demo owns (fleet start, first session seen over the endpoint), the
detection latency (flag raised in the runtime -> received over SSE), the auto-responder's
kill (flag raised -> agent answered "killed"), and a clean stop. Prints a table.
"""

from __future__ import annotations

import statistics
import threading
import time

from agentops_console.demo.headless import live_demo
from agentops_console.demo.scenario import load_scenario


def main() -> None:
    t_import = time.perf_counter()
    scenario = load_scenario()
    loaded_ms = (time.perf_counter() - t_import) * 1000
    rows: list[tuple[str, str, str, bool]] = []
    before = {t.name for t in threading.enumerate()}
    speed, duration = 10.0, 3.0
    started = time.perf_counter()
    with live_demo(
        scenario, seed=7, speed=speed, until_s=duration * speed, auto_respond=True
    ) as demo:
        up_ms = (time.perf_counter() - started) * 1000
        demo.fleet.wait(duration)
        stopping = time.perf_counter()
    stop_ms = (time.perf_counter() - stopping) * 1000
    report = demo.report()
    left = {t.name for t in threading.enumerate()} - before
    first = report["first_session_seen_s"]
    latencies = [d["latency_ms"] for d in report["detections"]]
    kill = next((a for a in report["actions"] if a["kind"] == "kill_session"), None)
    rows += [
        ("scenario load", f"{loaded_ms:.1f} ms", "-", True),
        ("fleet up (3 runtimes + endpoints)", f"{up_ms:.1f} ms", "< 2000 ms", up_ms < 2000),
        (
            "first session seen over SSE",
            f"{first * 1000:.0f} ms" if first else "never",
            "< 10 s",
            first is not None and first < 10,
        ),
        ("detections", str(len(latencies)), ">= 8", len(latencies) >= 8),
        (
            "detection latency median",
            f"{statistics.median(latencies):.1f} ms",
            "< 50 ms",
            statistics.median(latencies) < 50,
        ),
        ("detection latency max", f"{max(latencies):.1f} ms", "< 250 ms", max(latencies) < 250),
        (
            "runaway flag -> killed (auto)",
            f"{kill['response_ms']:.1f} ms" if kill else "none",
            "< 250 ms",
            kill is not None and kill["response_ms"] < 250,
        ),
        (
            f"headless run ({duration:.0f} s at {speed:.0f}x)",
            f"{report['duration_s']:.2f} s",
            "-",
            True,
        ),
        ("stop everything", f"{stop_ms:.0f} ms", "< 3000 ms", stop_ms < 3000),
        ("threads left after stop", str(len(left)), "0", not left),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'result':>14}  {'target':>10}  ok")
    for name, value, target, ok in rows:
        print(f"{name:<{width}}  {value:>14}  {target:>10}  {'yes' if ok else 'NO'}")


if __name__ == "__main__":
    main()
