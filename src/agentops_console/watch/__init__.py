"""`agentops watch`: the always-on companion's parts (issue 9, section 3).

Each part has one job and its own tests; the watcher process composes them:

- `config`: reads `watch.toml` (sinks and rules), every mistake one line with file and line;
- `sinks`: pages the on-call person (generic webhook, Slack, PagerDuty Events v2) from a
  queue per sink with retries, so a sink that is down never blocks anything else;
- `rules` / `respond`: the automatic responses the team wrote down, each audited in the
  governance log as operator `watch:<rule>`, at most once per session or workflow.

Nothing here imports textual or typer; the governance DB is touched only by `respond`.
"""
