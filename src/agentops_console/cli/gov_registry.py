"""`agentops init`, `agent ...` and `owner ...`: the registry and who owns what."""

from typing import Annotated

import typer

from .common import command_group, confirm_or_yes, emit_json, say
from .gov_common import AgentArg, AsOpt, DbOpt, JsonOpt, actor, gov_errors, open_gdb, out, table

agent_app = command_group("Register agents: endpoint, token env vars, workflows, risk.")
owner_app = command_group("Owners: one person per role per agent.")


def init(db: DbOpt = None, as_: AsOpt = None) -> None:
    """Create the governance DB (or upgrade an old one in place) and the audit key."""
    with gov_errors():
        from ..governance.auditkey import default_key_path, load_or_create
        from ..governance.db import open_db
        from ..governance.paths import default_db_path

        path = db or default_db_path()
        existed = path.exists()
        key_path = default_key_path()
        _, made = load_or_create(key_path)
        say(
            f"{'created' if made else 'using'} the audit key {key_path}"
            " (private and backed up: verify needs it)"
        )
        with open_db(path, create=True) as gdb:
            if not existed:
                with gdb.transaction(actor(as_)) as tx:
                    tx.audit("governance.init", str(path), details={"schema": gdb.schema_version()})
                say(f"created governance DB at {path} (schema v{gdb.schema_version()})")
            else:
                say(f"governance DB at {path} is ready (schema v{gdb.schema_version()})")
        out(str(path))


@agent_app.command("add")
def agent_add(
    name: str,
    endpoint: Annotated[str, typer.Option(help="Base URL of the agent's agentops/1 endpoint.")],
    token_env: Annotated[
        str | None, typer.Option(help="Env var that holds the endpoint's control token.")
    ] = None,
    read_token_env: Annotated[
        str | None,
        typer.Option(help="Env var that holds the endpoint's read-only token (--readonly)."),
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Tenant the agent serves.")] = None,
    workflow: Annotated[list[str] | None, typer.Option(help="A workflow (repeatable).")] = None,
    risk: Annotated[str, typer.Option(help="high, medium or low.")] = "medium",
    db: DbOpt = None,
    as_: AsOpt = None,
) -> None:
    """Register an agent. The DB keeps the tokens' env var names, never a token."""
    with gov_errors():
        from ..governance.registry import add_agent

        with open_gdb(db) as gdb:
            agent = add_agent(
                gdb,
                actor=actor(as_),
                name=name,
                endpoint=endpoint,
                token_env=token_env,
                read_token_env=read_token_env,
                tenant=tenant,
                workflows=workflow or [],
                risk=risk,
            )
        say(f"registered agent {agent.name} at {agent.endpoint}")


@agent_app.command("list")
def agent_list(db: DbOpt = None, json_: JsonOpt = False) -> None:
    """Registered agents."""
    with gov_errors():
        from ..governance.owners import missing_roles
        from ..governance.registry import list_agents

        with open_gdb(db) as gdb:
            agents = list_agents(gdb)
            missing = {a.name: missing_roles(gdb, a.name) for a in agents}
        if json_:
            emit_json([{**a.as_dict(), "missing_owner_roles": missing[a.name]} for a in agents])
            return
        rows = [
            [
                a.name,
                a.endpoint,
                a.token_env or "-",
                a.read_token_env or "-",
                a.tenant or "-",
                a.risk,
                ",".join(a.workflows),
            ]
            for a in agents
        ]
        headers = ["AGENT", "ENDPOINT", "TOKEN ENV", "READ TOKEN ENV", "TENANT", "RISK"]
        out(table(rows, [*headers, "WORKFLOWS"]))


@agent_app.command("show")
def agent_show(name: str, db: DbOpt = None, json_: JsonOpt = False) -> None:
    """One agent: endpoint, owners (and which roles are missing), releases."""
    with gov_errors():
        from ..governance.owners import list_owners, missing_roles
        from ..governance.registry import get_agent
        from ..governance.releases import list_releases

        with open_gdb(db) as gdb:
            agent = get_agent(gdb, name)
            owners = list_owners(gdb, name)
            missing = missing_roles(gdb, name)
            releases = list_releases(gdb, name)
        if json_:
            emit_json(
                {
                    **agent.as_dict(),
                    "owners": {o.role: o.person for o in owners},
                    "missing_owner_roles": missing,
                    "releases": [r.as_dict() for r in releases],
                }
            )
            return
        fields = [
            ("agent", agent.name),
            ("endpoint", agent.endpoint),
            ("token env", agent.token_env or "-"),
            ("read token env", agent.read_token_env or "-"),
            ("tenant", agent.tenant or "-"),
            ("risk", agent.risk),
            ("workflows", ", ".join(agent.workflows) or "-"),
        ]
        for label, value in fields:
            out(f"{label:<14} {value}")
        out("owners")
        for o in owners:
            out(f"  {o.role:<11} {o.person}")
        out(f"missing owner roles: {', '.join(missing) if missing else 'none'}")
        out("releases")
        for r in releases:
            out(f"  {r.version:<12} {r.status:<11} rev {r.revision}  by {r.author}")


@agent_app.command("update")
def agent_update(
    name: str,
    endpoint: Annotated[str | None, typer.Option(help="New endpoint base URL.")] = None,
    token_env: Annotated[
        str | None, typer.Option(help="Env var that holds the control token ('' for none).")
    ] = None,
    read_token_env: Annotated[
        str | None, typer.Option(help="Env var that holds the read-only token ('' for none).")
    ] = None,
    tenant: Annotated[str | None, typer.Option(help="Tenant the agent serves.")] = None,
    workflow: Annotated[
        list[str] | None, typer.Option(help="The workflows (repeatable; replaces the list).")
    ] = None,
    risk: Annotated[str | None, typer.Option(help="high, medium or low.")] = None,
    db: DbOpt = None,
    as_: AsOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Change an agent's endpoint, token variables, tenant, workflows or risk."""
    with gov_errors():
        from ..governance.registry import update_agent

        with open_gdb(db) as gdb:
            agent, changed = update_agent(
                gdb,
                actor=actor(as_),
                name=name,
                endpoint=endpoint,
                token_env=token_env,
                read_token_env=read_token_env,
                tenant=tenant,
                workflows=workflow,
                risk=risk,
            )
        if json_:
            emit_json({**agent.as_dict(), "changed": sorted(changed)})
        say(
            f"updated {name}: {', '.join(sorted(changed))}"
            if changed
            else f"{name}: nothing to change"
        )


@agent_app.command("remove")
def agent_remove(
    name: str,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask.")] = False,
    db: DbOpt = None,
    as_: AsOpt = None,
) -> None:
    """Remove an agent and its owners (its releases, incidents and audit rows stay)."""
    with gov_errors():
        from ..governance.registry import remove_agent

        with open_gdb(db) as gdb:
            confirm_or_yes(f"remove agent {name}?", yes)
            remove_agent(gdb, actor=actor(as_), name=name)
        say(f"removed agent {name}")


@owner_app.command("set")
def owner_set(
    agent: str,
    role: Annotated[
        str, typer.Argument(help="product, security, platform, applied-ai, operations")
    ],
    person: str,
    db: DbOpt = None,
    as_: AsOpt = None,
) -> None:
    """Make PERSON the owner of ROLE for AGENT."""
    with gov_errors():
        from ..governance.owners import set_owner

        with open_gdb(db) as gdb:
            set_owner(gdb, actor=actor(as_), agent=agent, role=role, person=person)
        say(f"{person} owns {role} for {agent}")


@owner_app.command("list")
def owner_list(
    agent: AgentArg = None,
    db: DbOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Owners, for one agent or all."""
    with gov_errors():
        from ..governance.owners import list_owners
        from ..governance.registry import get_agent

        with open_gdb(db) as gdb:
            if agent is not None:
                get_agent(gdb, agent)
            owners = list_owners(gdb, agent)
        if json_:
            emit_json([o.as_dict() for o in owners])
            return
        out(
            table(
                [[o.agent, o.role, o.person, o.set_at] for o in owners],
                ["AGENT", "ROLE", "PERSON", "SINCE"],
            )
        )


def register(app: typer.Typer) -> None:
    app.command("init", help="Create the governance DB (or upgrade an old one).")(init)
    app.add_typer(agent_app, name="agent")
    app.add_typer(owner_app, name="owner")
