"""The command line: `feedsvc fetch | digest | demo | db upgrade`.

The edge where settings are read, engines built and errors turned into one-line messages and exit codes.
"""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from feedsvc.config import Settings, profiles_for
from feedsvc.models import ConfigError, FeedsvcError, Profile

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="feedsvc: a personalized research-feed digest."
)
db_app = typer.Typer(no_args_is_help=True, help="Database commands.")
app.add_typer(db_app, name="db")

out = Console()
err = Console(stderr=True, soft_wrap=True)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    return typer.Exit(code)


def _settings() -> Settings:
    try:
        return Settings()
    except Exception as e:  # pydantic's ValidationError: name the variable
        raise _fail(f"bad setting: {e}") from None


def _profiles(settings: Settings, only: str | None = None) -> list[Profile]:
    try:
        path, profiles = profiles_for(settings)
    except ConfigError as e:
        raise _fail(str(e), 2) from None
    if only:
        profiles = [p for p in profiles if p.name == only]
        if not profiles:
            raise _fail(f"{path}: no profile named '{only}'", 2)
    return profiles


def _engine(settings: Settings):
    from feedsvc.store.db import current_revision, make_engine

    engine = make_engine(settings.resolved_database_url())
    try:
        rev = current_revision(engine)
    except Exception as e:
        raise _fail(f"cannot open the database: {e}") from None
    if rev is None:
        raise _fail("the database has no schema yet: run `feedsvc db upgrade` first")
    return engine


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=err, transient=True
    )


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database to the latest schema."""
    from feedsvc.store.db import current_revision, make_engine, upgrade

    settings = _settings()
    engine = make_engine(settings.resolved_database_url())
    try:
        upgrade(engine)
        out.print(
            f"database at revision {current_revision(engine)} "
            f"({engine.url.render_as_string(hide_password=True)})"
        )
    except Exception as e:
        raise _fail(f"migration failed: {e}") from None
    finally:
        engine.dispose()


@app.command()
def fetch() -> None:
    """Fetch new items from every source into the store."""
    from feedsvc import pipeline
    from feedsvc.store.db import session_factory

    settings = _settings()
    profiles = _profiles(settings)
    engine = _engine(settings)
    try:
        with _progress() as bar:
            task = bar.add_task("fetching", total=None)
            outcomes = pipeline.collect(
                settings,
                session_factory(engine),
                profiles,
                progress=lambda name: bar.update(task, description=f"fetching {name}"),
            )
    finally:
        engine.dispose()
    _print_outcomes(outcomes)
    ran = [o for o in outcomes if o.status not in ("disabled", "backoff")]
    if ran and all(o.status == "failed" for o in ran):
        raise typer.Exit(1)


@app.command()
def sources() -> None:
    """Each source's health: last run, last success, failures in a row, back-off, the last error."""
    from feedsvc import pipeline
    from feedsvc.store.db import session_factory

    settings = _settings()
    engine = _engine(settings)
    try:
        health = pipeline.source_health(settings, session_factory(engine))
    finally:
        engine.dispose()
    table = Table(
        "source", "state", "last run (UTC)", "last success (UTC)", "failures", "next try", "error / note"
    )

    def when(t: object) -> str:
        return f"{t:%Y-%m-%d %H:%M}" if t else "-"

    for h in health:
        if not h.enabled:
            state = "[dim]disabled[/]"
        elif h.last_status == "failed":
            state = f"[red]failing since {when(h.failing_since)}[/]"
        elif h.last_status == "never run":
            state = "[yellow]never run[/]"
        else:
            state = f"[green]{h.last_status}[/]"
        detail = h.error or h.note
        if h.source == "youtube" and h.units_today:
            detail += f" (quota used today: {h.units_today} units)"
        table.add_row(
            h.source,
            state,
            when(h.last_run),
            when(h.last_success),
            str(h.failures),
            when(h.next_try) if h.next_try else "now",
            detail,
        )
    out.print(table)


def _print_outcomes(outcomes: list) -> None:
    table = Table("source", "status", "scanned", "kept", "new", "note / error")
    for o in outcomes:
        style = {"failed": "red", "empty": "yellow", "backoff": "yellow", "disabled": "dim"}.get(
            o.status, "green"
        )
        table.add_row(
            o.source, f"[{style}]{o.status}[/]", str(o.scanned), str(o.fetched), str(o.new), o.error or o.note
        )
    out.print(table)


@app.command()
def digest(
    day: Annotated[
        str | None, typer.Option("--date", help="The digest's date, YYYY-MM-DD (default: today).")
    ] = None,
    profile: Annotated[str | None, typer.Option("--profile", help="Only this profile.")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the digest; store and write nothing.")
    ] = False,
) -> None:
    """Rank, write cards and render each profile's digest."""
    from feedsvc import pipeline
    from feedsvc.store.db import session_factory

    settings = _settings()
    profiles = _profiles(settings, profile)
    try:
        the_day = date.fromisoformat(day) if day else None
    except ValueError:
        raise _fail(f"--date {day!r} is not a date (expected YYYY-MM-DD)", 2) from None
    engine = _engine(settings)
    try:
        with _progress() as bar:
            bar.add_task("ranking and writing cards", total=None)
            built = pipeline.build_digests(
                settings, session_factory(engine), profiles, day=the_day, dry_run=dry_run
            )
    except FeedsvcError as e:
        raise _fail(str(e)) from None
    finally:
        engine.dispose()
    for b in built:
        if dry_run:
            out.print(b.markdown, markup=False, highlight=False)
        else:
            state = "already built, unchanged" if b.existed else "written"
            out.print(f"{b.profile} {b.day}: {len(b.digest.cards)} cards, {state}: {b.path}")


@app.command()
def demo(
    data_dir: Annotated[
        Path, typer.Option(help="Where the demo's database and digest go (wiped first).")
    ] = Path("data/demo"),
    preview_lines: Annotated[int, typer.Option(help="How many lines of the digest to show.")] = 60,
) -> None:
    """Run the whole pipeline offline on a bundled snapshot of real recorded arXiv data."""
    from feedsvc.demo import SNAPSHOT_DAY, run_demo

    with _progress() as bar:
        task = bar.add_task("starting the replay server", total=None)
        result = run_demo(
            data_dir, progress=lambda name: bar.update(task, description=f"fetching {name} (replayed)")
        )
    _print_outcomes(result.outcomes)
    for b in result.built:
        out.rule(f"{b.profile} · {SNAPSHOT_DAY} (the recorded snapshot's day)")
        lines = b.markdown.splitlines()
        out.print(Markdown("\n".join(lines[:preview_lines])))
        if len(lines) > preview_lines:
            out.print(f"[dim]… {len(lines) - preview_lines} more lines[/]")
        out.print(f"\n[bold]digest written to[/] {b.path}")


def main() -> None:
    app()
