"""A simulated fleet of agents on the real runtime: `agentops demo`, and a fixture for tests.

- `scenario.load_scenario(path)`: the story as TOML data (fixtures/scenarios/), validated,
  errors as `file:line: where: what`.
- `script.plan(scenario, seed)`: every session and incident, decided up front from the seed.
- `fleet.Fleet`: one Runtime + endpoint per agent on 127.0.0.1 (port 0, fresh token), the
  script played at `speed`; `endpoints()` gives (agent, url, token) for a console.
- `headless.live_demo(...)` / `run_headless(...)`: fleet + SSE watcher (+ `--auto-respond`),
  stopped cleanly on exit; `report.build_report` / `render_text` say what happened.
- `seed.seed_governance(db, fleet)`: registry, owners, signed live releases, all audited.
- `launch.build_console(demo, ...)`: the console app on the fleet, tokens passed in process.
"""
