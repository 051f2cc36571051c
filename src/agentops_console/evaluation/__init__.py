"""Behavioural evaluation of a release candidate: suites, the harness, metrics, results.

A suite (data, `fixtures/evals/*.toml`) is run against a target (the team's own agent
entry point) on the real runtime configured as the release under test; every case becomes
an `agentops.record/1` session and is scored against its expectations; the metrics are
stored in the governance DB, bound to the release's content hash and the suite's hash,
where `agentops release check` holds them to the rubric's `[evaluation]` thresholds.

Never imports textual or typer; the CLI (`cli/eval_cmds.py`) is a thin layer over this.
"""
