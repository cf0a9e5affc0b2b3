"""The command line: `feedsvc fetch | digest | publish | rank | card | subscribe | demo | db upgrade | ...`.

The edge where settings are read, engines built and errors turned into one-line messages and exit codes.
"""

from __future__ import annotations

import errno
import logging
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from feedsvc import redaction
from feedsvc.config import Settings, profiles_for
from feedsvc.models import ConfigError, FeedsvcError, Profile

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="feedsvc: a personalized research-feed digest."
)
db_app = typer.Typer(no_args_is_help=True, help="Database commands.")
app.add_typer(db_app, name="db")
profile_app = typer.Typer(no_args_is_help=True, help="Profile commands.")
app.add_typer(profile_app, name="profile")
subscribe_app = typer.Typer(no_args_is_help=True, help="Subscribe a Telegram chat or an email address.")
app.add_typer(subscribe_app, name="subscribe")

# Markup off: what is printed is data (titles, profile names, file names, messages), never Rich markup;
# styles are given as Text spans instead.
_verbose = False  # -v: tracebacks (masked) as well as the one line
out = Console(markup=False, highlight=False)
err = Console(stderr=True, soft_wrap=True, markup=False, highlight=False)


def _styled(label: str, style: str, message: str = "") -> Text:
    return Text.assemble((label, style), f" {message}" if message else "")


def _fail(message: str, code: int = 1) -> typer.Exit:
    line = " ".join(message.split())  # the contract is one line, whatever a library's text holds
    err.print(_styled("error:", "bold red", redaction.redact(line, _known_secrets())))
    return typer.Exit(code)


def _report_skipped(prefix: str, problems: list[str], more: str, limit: int = 10) -> None:
    """One stderr line for each of the first `limit` problems, then one line counting the rest."""
    for problem in problems[:limit]:
        err.print(_styled("skipped", "yellow", f"{prefix}{problem}"))
    if len(problems) > limit:
        err.print(f"... and {len(problems) - limit} more {more}")


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
    global _verbose
    _verbose = verbose
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    redaction.install(_known_secrets())


def _known_secrets() -> list[str]:
    """The configured secrets, to mask in logs and error lines; none when the settings do not load."""
    try:
        return Settings().secret_values()
    except Exception:  # a bad setting is reported by the command itself
        return []


def describe(e: BaseException) -> str:
    """One line naming what went wrong, for an error no command converted (the database, the disk, ...)."""
    from sqlalchemy.exc import DBAPIError, SQLAlchemyError

    if isinstance(e, FeedsvcError):
        return str(e)
    if isinstance(e, DBAPIError):
        cause = str(e.orig).strip().splitlines()[0] if str(e.orig).strip() else type(e.orig).__name__
        if "database is locked" in cause:
            return "the database is locked by another process (SQLite): try again when it has finished"
        if "disk is full" in cause or "No space left" in cause:
            return f"the database's disk is full: {cause}"
        return f"database error: {cause}"
    if isinstance(e, SQLAlchemyError):
        return f"database error: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
    if isinstance(e, OSError):
        where = f": {e.filename}" if e.filename else ""
        if e.errno == errno.ENOSPC:
            return f"no space left on the device{where}"
        return f"{e.strerror or type(e).__name__}{where}"
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"unexpected {type(e).__name__}: {first} (run with -v for the traceback)"


@db_app.command("upgrade")
def db_upgrade(
    wait: Annotated[
        float, typer.Option(help="Seconds to wait for the database to accept connections (one starting).")
    ] = 0.0,
) -> None:
    """Create or migrate the database to the latest schema."""
    from feedsvc.store.db import current_revision, make_engine, upgrade, wait_until_reachable

    settings = _settings()
    engine = make_engine(settings.resolved_database_url())
    try:
        if wait > 0:
            wait_until_reachable(engine, wait)
        upgrade(engine)
        out.print(
            f"database at revision {current_revision(engine)} "
            f"({engine.url.render_as_string(hide_password=True)})"
        )
    except Exception as e:
        raise _fail(f"migration failed: {describe(e)}") from None
    finally:
        engine.dispose()


@app.command()
def fetch(
    ids: Annotated[
        list[str] | None, typer.Option("--ids", help="Instead: fetch these papers by arXiv id or URL.")
    ] = None,
) -> None:
    """Fetch new items from every source into the store (or, with --ids, particular papers).

    Every enabled source is fetched, even one fetched minutes ago (the scheduler's fetches skip those,
    see FEEDSVC_FETCH_MIN_INTERVAL_SECONDS); a source another process is fetching is waited for instead."""
    from feedsvc.pipeline.collect import collect
    from feedsvc.pipeline.library import fetch_papers
    from feedsvc.store.db import session_factory

    settings = _settings()
    if ids:
        engine = _engine(settings)
        try:
            got = fetch_papers(settings, session_factory(engine), ids)
        except ValueError as e:
            raise _fail(str(e), 2) from None
        finally:
            engine.dispose()
        for problem in got.problems:
            err.print(Text(problem, style="yellow"))
        out.print(f"{got.from_api} papers from arXiv's API, {got.from_html} from their arXiv HTML")
        if got.from_api + got.from_html == 0:
            raise typer.Exit(1)
        return
    profiles = _profiles(settings)
    engine = _engine(settings)
    try:
        with _progress() as bar:
            task = bar.add_task("fetching", total=None)
            outcomes = collect(
                settings,
                session_factory(engine),
                profiles,
                progress=lambda name: bar.update(task, description=f"fetching {name}"),
            )
    finally:
        engine.dispose()
    _print_outcomes(outcomes)
    ran = [o for o in outcomes if o.status not in ("disabled", "backoff", "fresh", "busy")]
    if ran and all(o.status == "failed" for o in ran):
        raise typer.Exit(1)


@app.command()
def sources() -> None:
    """Each source's health: last run, last success, failures in a row, back-off, the last error; and the
    LLM writer's and judge's runs, with the day's tokens, when an endpoint is configured."""
    from feedsvc.pipeline.collect import source_health
    from feedsvc.store.db import session_factory

    settings = _settings()
    engine = _engine(settings)
    try:
        health = source_health(settings, session_factory(engine))
    finally:
        engine.dispose()
    table = Table(
        "source", "state", "last run (UTC)", "last success (UTC)", "failures", "next try", "error / note"
    )

    def when(t: object) -> str:
        return f"{t:%Y-%m-%d %H:%M}" if t else "-"

    for h in health:
        if not h.enabled:
            state = Text("disabled", style="dim")
        elif h.last_status == "failed":
            state = Text(f"failing since {when(h.failing_since)}", style="red")
        elif h.last_status == "never run":
            state = Text("never run", style="yellow")
        else:
            state = Text(h.last_status, style="green")
        detail = h.error or h.note
        if h.source == "youtube" and h.units_today:
            detail += f" (quota used today: {h.units_today} units)"
        if h.source == "llm" and h.units_today:
            detail += f" (tokens in the last 24 h: {h.units_today})"
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
        style = {
            "failed": "red",
            "empty": "yellow",
            "backoff": "yellow",
            "busy": "yellow",
            "disabled": "dim",
            "fresh": "dim",
        }.get(o.status, "green")
        table.add_row(
            o.source,
            Text(o.status, style=style),
            str(o.scanned),
            str(o.fetched),
            str(o.new),
            o.error or o.note,
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
    from feedsvc.pipeline.digest import build_digests
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
            built = build_digests(settings, session_factory(engine), profiles, day=the_day, dry_run=dry_run)
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
        Path, typer.Option(help="Where the demo's database and digest go (wiped first when built).")
    ] = Path("data/demo"),
    preview_lines: Annotated[int, typer.Option(help="How many lines of the digest to show.")] = 60,
    serve_it: Annotated[
        bool, typer.Option("--serve", help="Serve the demo's archive on 127.0.0.1 (built first if needed).")
    ] = False,
    port: Annotated[int, typer.Option(help="The port --serve listens on.")] = 8000,
    into_store: Annotated[
        bool,
        typer.Option(
            "--into-store",
            help="Into the configured store and data directory (a running service's), wiping nothing.",
        ),
    ] = False,
) -> None:
    """Run the whole pipeline offline on a bundled snapshot of real recorded arXiv data; with --serve,
    browse its archive."""
    from feedsvc.demo import demo_built

    if into_store and serve_it:
        raise _fail("--serve browses the demo's own directory; run --into-store without it", 2)
    if not serve_it or not demo_built(data_dir):
        _build_demo(data_dir, preview_lines, show_next=not serve_it and not into_store, into_store=into_store)
    if serve_it:
        _serve_demo(data_dir, port)


def _serve_command(data_dir: Path) -> str:
    default = data_dir == Path("data/demo")
    return "feedsvc demo --serve" + ("" if default else f" --data-dir {data_dir}")


def _build_demo(data_dir: Path, preview_lines: int, show_next: bool, into_store: bool = False) -> None:
    settings = _settings()
    from feedsvc.demo import SNAPSHOT_DAY, run_demo

    url = settings.resolved_database_url() if into_store else ""
    with _progress() as bar:
        task = bar.add_task("starting the replay server", total=None)
        result = run_demo(
            settings.data_dir if into_store else data_dir,
            progress=lambda name: bar.update(task, description=f"fetching {name} (replayed)"),
            semantic=settings.semantic,
            database_url=url,
        )
    _print_outcomes(result.outcomes)
    for b in result.built:
        out.rule(f"{b.profile} · {SNAPSHOT_DAY} (the recorded snapshot's day)")
        lines = b.markdown.splitlines()
        out.print(Markdown("\n".join(lines[:preview_lines])))
        if len(lines) > preview_lines:
            out.print(Text(f"… {len(lines) - preview_lines} more lines", style="dim"))
        out.print(Text.assemble("\n", ("digest written to", "bold"), f" {b.path}"))
    if result.library is not None:
        out.print(
            f"\nstudy lists ({result.library.summary()}): `feedsvc profile library --profile NAME`, "
            "or /library/NAME on the archive",
            soft_wrap=True,
        )
    if show_next:
        out.print(Text.assemble("\n", ("browse it:", "bold"), f" {_serve_command(data_dir)}"), soft_wrap=True)


def _serve_demo(data_dir: Path, port: int) -> None:
    """The demo's archive on 127.0.0.1:`port` with the demo's own safe settings (`demo.serve_settings`)."""
    from feedsvc.demo import DEMO_PAGE, serve_settings

    settings = serve_settings(data_dir, port)
    url = f"{settings.base_url}{DEMO_PAGE}"
    out.print(Text.assemble(("serving the demo at", "bold"), f" {url} (Ctrl-C stops)"), soft_wrap=True)
    _serve_archive(settings, settings.web_host, port)


LLM_JUDGE_HELP = (
    "The LLM at FEEDSVC_LLM_BASE_URL grades the top FEEDSVC_LLM_JUDGE_TOP picks (2/1/0) and re-orders "
    "them by grade (whatever FEEDSVC_LLM_JUDGE says)."
)


def _judge_client(settings: Settings):
    """The LLM client `--llm-judge` asks; fails when no LLM endpoint is configured."""
    from feedsvc.cards.llm import client_from_settings

    client = client_from_settings(settings)
    if client is None:
        raise _fail("--llm-judge needs an LLM endpoint: set FEEDSVC_LLM_BASE_URL (and FEEDSVC_LLM_MODEL)", 2)
    return client


@app.command("rank")
def rank_cmd(
    profiles: Annotated[Path, typer.Option("--profiles", help="The profile TOML file.")],
    candidates: Annotated[
        Path, typer.Option("--candidates", help="JSONL: id, title, abstract, authors, ...")
    ],
    top: Annotated[int, typer.Option("--top", help="How many to return per profile.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (the stable interface).")] = False,
    profile: Annotated[str | None, typer.Option("--profile", help="Only this profile.")] = None,
    llm_judge: Annotated[bool, typer.Option("--llm-judge", help=LLM_JUDGE_HELP)] = False,
) -> None:
    """Rank candidates for profiles, as the digest would: the public interface for evaluation harnesses."""
    import json

    from feedsvc.config import load_profiles
    from feedsvc.rank.public import Judging, rank_candidates, read_candidate_file
    from feedsvc.rank.semantic import load_embedder

    settings = _settings()
    client = _judge_client(settings) if llm_judge else None
    judging = Judging(client, settings.llm_judge_top) if client is not None else None
    try:
        loaded = load_profiles(profiles)
        if profile:
            loaded = [p for p in loaded if p.name == profile]
            if not loaded:
                raise ConfigError(f"{profiles}: no profile named '{profile}'")
        read = read_candidate_file(candidates)
        if not read.candidates:
            raise ConfigError(
                f"{candidates}: no usable candidate ({'; '.join(read.problems[:3]) or 'empty file'})"
            )
        result = rank_candidates(
            loaded, read.candidates, top=top, embedder=load_embedder(settings), judging=judging
        )
    except (ConfigError, OSError, ValueError) as e:
        raise _fail(str(e), 2) from None
    finally:
        if client is not None:
            client.close()
    _report_skipped(f"{candidates}: ", read.problems, 'skipped lines (all of them in the JSON\'s "skipped")')
    result["skipped"] = read.problems
    if as_json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
        return
    for name, picks in result["profiles"].items():
        table = Table(
            "#",
            "id",
            "score",
            "thread",
            "bar",
            "why",
            title=f"{name} (scorers: {', '.join(result['scorers'])})",
        )
        for n, p in enumerate(picks, start=1):
            table.add_row(
                str(n),
                p["id"],
                f"{p['score']:.3f}",
                p["thread"],
                "✓" if p["clears_bar"] else "-",
                "; ".join(p["reasons"][1:3]),
            )
        out.print(table)


@app.command("card")
def card_cmd(
    candidates: Annotated[
        Path, typer.Option("--candidates", help="JSONL: id, title, abstract, ..., fulltext (a path)")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (the stable interface).")] = False,
    llm: Annotated[
        bool, typer.Option("--llm", help="The LLM at FEEDSVC_LLM_BASE_URL writes the prose, behind the gate.")
    ] = False,
) -> None:
    """Write the digest's card for each candidate: the public card interface for evaluation harnesses."""
    import json

    from feedsvc.cards.llm import client_from_settings
    from feedsvc.cards.public import public_cards
    from feedsvc.rank.public import read_candidate_file

    settings = _settings()
    client = client_from_settings(settings) if llm else None
    if llm and client is None:
        raise _fail("--llm needs an endpoint: set FEEDSVC_LLM_BASE_URL (and FEEDSVC_LLM_MODEL)", 2)
    try:
        read = read_candidate_file(candidates, required=("id",))
        if not read.candidates:
            raise ConfigError(
                f"{candidates}: no usable candidate ({'; '.join(read.problems[:3]) or 'empty file'})"
            )
        cards = public_cards(read.candidates, max_bytes=settings.fulltext_max_bytes, client=client)
    except (ConfigError, OSError, ValueError) as e:
        raise _fail(str(e), 2) from None
    finally:
        if client is not None:
            client.close()
    _report_skipped(f"{candidates}: ", read.problems, "skipped lines")
    if as_json:
        print(json.dumps(cards, ensure_ascii=False, indent=2))
        return
    for card in cards:
        eq = card["key_equation"]
        out.print(Text.assemble((str(card["id"]), "bold"), f"  {card['domain']}  {card['time_cost']}"))
        out.print(card["intuition"])
        if "llm" in card:
            out.print(
                f"writer: {card['writer']}; "
                + ", ".join(f"{k} {v}" for k, v in card["llm"]["fields"].items())
            )
        out.print(
            f"key equation: {eq['text']} ({eq['where']})" if eq else f"no key equation: {card['declined']}"
        )
        for line in card["headlines"]:
            out.print(f"- {line}")
        out.print("")


@profile_app.command("import")
def profile_import(
    file: Annotated[
        Path, typer.Argument(help="BibTeX, a Zotero CSV export, or a list of arXiv ids or URLs.")
    ],
    profile: Annotated[str, typer.Option("--profile", help="The profile the papers seed.")],
    thread: Annotated[str, typer.Option("--thread", help="Only this thread (default: every thread).")] = "",
) -> None:
    """Import a library: its papers become seeds of the profile's threads."""
    from feedsvc.pipeline.library import import_library
    from feedsvc.store.db import session_factory

    settings = _settings()
    profiles = _profiles(settings)
    engine = _engine(settings)
    try:
        with _progress() as bar:
            bar.add_task(f"importing {file.name}", total=None)
            result = import_library(settings, session_factory(engine), profiles, profile, file, thread=thread)
    except FeedsvcError as e:
        raise _fail(str(e), 2) from None
    finally:
        engine.dispose()
    _report_skipped("", result.problems, "skipped entries")
    where = f"thread '{thread}'" if thread else "every thread"
    out.print(
        f"{file}: {result.read} entries read, {result.fetched} fetched from arXiv, "
        f"{result.added} added to {profile} ({where}), {len(result.problems)} skipped"
    )
    if result.read == 0:
        raise typer.Exit(1)


@profile_app.command("library")
def profile_library(
    profile: Annotated[str, typer.Option("--profile", help="Whose study list.")],
    thread: Annotated[str, typer.Option("--thread", help="Only this thread's papers.")] = "",
    tag: Annotated[str, typer.Option("--tag", help="Only papers with this tag (imported, liked, ...).")] = "",
    markdown: Annotated[bool, typer.Option("--markdown", help="Print the list as Markdown.")] = False,
    read: Annotated[
        int, typer.Option("--read", min=0, help="First read up to N unread papers' full texts from arXiv.")
    ] = 0,
) -> None:
    """The study list: imported papers, papers voted 👍 and seed papers, newest first."""
    from feedsvc.pipeline.study import read_library_papers, study_list
    from feedsvc.render.study import byline, study_markdown
    from feedsvc.store.db import session_factory

    settings = _settings()
    profiles = _profiles(settings, profile)
    engine = _engine(settings)
    try:
        factory = session_factory(engine)
        if read:
            with _progress() as bar:
                bar.add_task(f"reading up to {read} library papers", total=None)
                reading = read_library_papers(settings, factory, profiles, limit=read)
            _report_skipped("", reading.problems, "papers without a full text")
            err.print(reading.summary())
        with factory() as session:
            shelf = study_list(session, profile, thread=thread, tag=tag.strip().lower())
    finally:
        engine.dispose()
    if shelf is None:  # the profile is in the file but was never synced into the store
        raise _fail(f"the store has no profile '{profile}' yet: import a library or build a digest first", 2)
    if markdown:
        typer.echo(study_markdown(shelf, settings.base_url, thread=thread, tag=tag), nl=False)
        return
    for e in shelf.entries:
        page = " · breakdown" if e.breakdown else ""
        out.print(f"{e.title}\n  {byline(e)} · {', '.join(e.tags)} · {e.difficulty}{page}", soft_wrap=True)
    out.print(f"{len(shelf.entries)} of {shelf.total} papers")


@app.command()
def feedback(
    item: Annotated[str, typer.Argument(help="The item: an arXiv id or URL, or an item key.")],
    profile: Annotated[str, typer.Option("--profile", help="Whose vote.")],
    vote: Annotated[
        str, typer.Option("--vote", help="up, down, more (more like this) or less (less like this).")
    ],
) -> None:
    """Record a vote, as the channels' buttons do; the next ranking uses it."""
    from datetime import UTC, datetime

    from feedsvc.identity import ItemKey
    from feedsvc.store import queries
    from feedsvc.store.db import session_factory, session_scope

    settings = _settings()
    profiles = _profiles(settings, profile)
    key = ItemKey.from_reader(item)
    engine = _engine(settings)
    try:
        with session_scope(session_factory(engine)) as session:
            queries.sync_profiles(session, profiles, datetime.now(UTC))
            queries.record_feedback(session, profile, key, vote, channel="cli", now=datetime.now(UTC))
    except (LookupError, ValueError) as e:
        raise _fail(str(e).strip("'\""), 2) from None
    finally:
        engine.dispose()
    out.print(f"recorded: {profile} voted {vote} on {key}")


def _eval_labels(
    labels: Path,
    corpus: Path,
    settings: Settings,
    *,
    only: str | None = None,
    days: int = 0,
    llm_judge: bool = False,
) -> None:
    """Print each (profile, day) pair and the per-profile and overall table of every scorer; with
    `llm_judge`, the judged ranker is one more scorer ("llm-judge"), with a progress bar of its requests."""
    from feedsvc.rank.evaluate import evaluate, read_labelled_set, standard_rankers
    from feedsvc.rank.semantic import load_embedder

    try:
        labelled = read_labelled_set(labels).subset(only, days)
        missing = [d for d in labelled.days if not (corpus / f"{d}.jsonl").is_file()]
        if missing:
            raise ConfigError(f"{corpus}: no {missing[0]}.jsonl for the labelled days")
        embedder = load_embedder(settings)
    except ConfigError as e:
        raise _fail(str(e), 2) from None
    rankers = standard_rankers(embedder is not None)
    client = _judge_client(settings) if llm_judge else None

    def show(p) -> None:
        out.print(
            f"{p.scorer:10s} {p.profile:22s} {p.day} hits@3={p.hits} nDCG@10={p.ndcg:.3f}", highlight=False
        )

    try:
        with _judge_progress(labelled, settings, client, rankers):
            report = evaluate(labelled, corpus, rankers, embedder=embedder, on_pair=show)
    finally:
        if client is not None:
            client.close()
    _print_eval_table(labels, labelled.profiles, report)


@contextmanager
def _judge_progress(labelled, settings: Settings, client, rankers: dict) -> Iterator[Progress | None]:
    """With a `client`, add the judged ranker to `rankers` and show a bar of its judgements (the
    judge asks up to FEEDSVC_LLM_JUDGE_TOP per pair, each a request of up to FEEDSVC_LLM_TIMEOUT)."""
    if client is None:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, TimeRemainingColumn

    from feedsvc.rank.evaluate import judged_ranker
    from feedsvc.rank.public import Judging

    pairs = sum(len(by_day) for by_day in labelled.grades.values())
    columns = (TextColumn("LLM judge"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, TimeRemainingColumn(), console=err) as progress:
        task = progress.add_task("judge", total=pairs * settings.llm_judge_top)
        rankers["llm-judge"] = judged_ranker(
            Judging(client, settings.llm_judge_top, lambda s, v: progress.advance(task))
        )
        yield progress


def _print_eval_table(labels: Path, profiles: dict, report) -> None:
    table = Table("profile", *(f"{s} hits@3 / nDCG@10" for s in report.scores), title=f"{labels}")
    for name in profiles:
        table.add_row(
            name, *(f"{sc[name].hits}/{sc[name].best}  {sc[name].ndcg:.3f}" for sc in report.scores.values())
        )
    overall = [report.overall(s) for s in report.scores]
    table.add_row("overall", *(f"{o.hits}/{o.best}  {o.ndcg:.3f}" for o in overall), style="bold")
    out.print(table)


@app.command("eval")
def eval_cmd(
    corpus: Annotated[
        Path | None, typer.Option("--corpus", help="A directory of daily JSONL files (one day a file).")
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(
            "--labels",
            help="A labelled taste set (profiles.json, labels-NAME.json): print hits@3 and nDCG@10 "
            "instead of picks; the days come from --corpus "
            "(default: LABELS/../arxiv_corpus/dw-dengwei_daily).",
        ),
    ] = None,
    profiles: Annotated[
        Path | None, typer.Option("--profiles", help="Profile TOML (default: the example).")
    ] = None,
    top: Annotated[int, typer.Option("--top", help="Picks per day.")] = 3,
    days: Annotated[int, typer.Option("--days", help="At most this many days, the first ones.")] = 0,
    only: Annotated[
        str | None, typer.Option("--only", help="With --labels: only this labelled profile.")
    ] = None,
    llm_judge: Annotated[
        bool,
        typer.Option(
            "--llm-judge",
            help="With --labels: score the ranker with the LLM judge as its own row, 'llm-judge' "
            "(slow on a CPU: FEEDSVC_LLM_JUDGE_TOP requests per profile and day).",
        ),
    ] = False,
) -> None:
    """Rank each day of a corpus (e.g. ../shared/data/arxiv_corpus/dw-dengwei_daily) and print the picks;
    with --labels, score the ranking on a labelled set against the TF-IDF and embedding references."""
    import json as jsonlib
    from datetime import UTC, datetime

    from feedsvc.config import example_profiles_path, load_profiles
    from feedsvc.rank.public import rank_candidates
    from feedsvc.rank.semantic import load_embedder

    settings = _settings()
    if labels is not None:
        corpus = corpus or labels.parent / "arxiv_corpus" / "dw-dengwei_daily"
        _eval_labels(labels, corpus, settings, only=only, days=days, llm_judge=llm_judge)
        return
    if llm_judge or only:
        raise _fail("--llm-judge and --only go with --labels DIR", 2)
    if corpus is None:
        raise _fail("give --corpus DIR (picks per day) or --labels DIR (quality on a labelled set)", 2)
    files = sorted(corpus.glob("*.jsonl"))
    if not files:
        raise _fail(f"{corpus}: no .jsonl files", 2)
    try:
        loaded = load_profiles(profiles or example_profiles_path())
    except ConfigError as e:
        raise _fail(str(e), 2) from None
    embedder = load_embedder(settings)
    for path in files[: days or None]:
        day = datetime.fromisoformat(path.stem).replace(tzinfo=UTC)
        cands = []
        for line in path.read_text(encoding="utf-8").splitlines():
            r = jsonlib.loads(line)
            cands.append(
                {
                    "id": r["id"],
                    "title": r["title"],
                    "abstract": r["summary"],
                    "authors": r["authors"],
                    "categories": r["categories"],
                    "published": path.stem,
                }
            )
        from feedsvc.rank.public import read_candidates

        read = read_candidates(jsonlib.dumps(c) for c in cands)
        result = rank_candidates(loaded, read.candidates, top=top, now=day, embedder=embedder)
        _print_day_picks(path.stem, read.candidates, result)


def _print_day_picks(day: str, candidates: list, result: dict) -> None:
    """A rule per profile, then its picks with score, thread, title and the first reasons."""
    for name, picks in result["profiles"].items():
        out.rule(f"{day} · {name} · {len(candidates)} papers · scorers: {', '.join(result['scorers'])}")
        for p in picks:
            title = next(c.title for c in candidates if c.meta["id"] == p["id"])
            out.print(
                Text.assemble(
                    (f"{p['score']:.3f}", "bold"),
                    f" {p['id']} [{p['thread']}] {title}",
                    ("" if p["clears_bar"] else " (below the bar)", "dim"),
                )
            )
            out.print(f"      {'; '.join(p['reasons'][1:3])}", style="dim", highlight=False)


@subscribe_app.command("telegram")
def subscribe_telegram(
    profile: Annotated[str, typer.Option("--profile", help="The profile the chat will receive.")],
) -> None:
    """Print a one-time code (valid 24 hours) to send to the bot as `/start CODE`."""
    from feedsvc.pipeline.subscribe import new_telegram_code

    settings = _settings()
    engine, factory = _synced(settings, profile)
    try:
        code = new_telegram_code(factory, profile)
    finally:
        engine.dispose()
    out.print(f"Send this to the bot within 24 hours (it works once):\n\n  /start {code}\n", highlight=False)
    if not settings.telegram_bot_token.get_secret_value():
        err.print(
            _styled(
                "note:", "yellow", "FEEDSVC_TELEGRAM_BOT_TOKEN is not set: start the bot with a token first"
            )
        )


@subscribe_app.command("email")
def subscribe_email(
    address: Annotated[str, typer.Argument(help="The email address.")],
    profile: Annotated[str, typer.Option("--profile", help="The profile the address will receive.")],
) -> None:
    """Mail a confirmation link (double opt-in); the address receives digests once it is clicked.

    The request goes through the outbox like the web form's (same per-address limit and resend window),
    then the due confirmation mails are sent at once; one that fails is retried by `feedsvc publish`."""
    from feedsvc.pipeline.subscribe import TooMany, request_email_subscription

    settings = _settings()
    engine, factory = _synced(settings, profile)
    try:
        queued = request_email_subscription(settings, factory, address, profile)
        sent = _send_confirmations(settings, factory) if queued else 0
    except TooMany as e:
        raise _fail(f"{e.reason}; try again in {e.retry_after} seconds") from None
    except (ValueError, LookupError) as e:
        raise _fail(str(e).strip("'\""), 2) from None
    except FeedsvcError as e:
        raise _fail(str(e)) from None
    finally:
        engine.dispose()
    if not queued:
        out.print(f"A confirmation link to {address} is already on its way; not sent again.", highlight=False)
    elif sent:
        out.print(f"A confirmation link was mailed to {address}; it is valid for 7 days.", highlight=False)
    else:
        out.print(
            f"The confirmation mail to {address} could not be sent now; `feedsvc publish` retries it.",
            highlight=False,
        )


def _send_confirmations(settings: Settings, factory) -> int:
    """Send the outbox's due confirmation mails now; how many were sent."""
    from contextlib import closing
    from datetime import UTC, datetime
    from functools import partial

    from feedsvc.pipeline.publish import default_worker_id, email_channel, send_confirmations

    with closing(email_channel(settings)) as email:
        now = partial(datetime.now, UTC)
        return send_confirmations(settings, factory, email, now, f"{default_worker_id()}/cli")


def _synced(settings: Settings, profile: str):
    """The engine and a session factory, with `profile` from the profile file mirrored into the store."""
    from feedsvc.pipeline.subscribe import sync_profiles
    from feedsvc.store.db import session_factory

    profiles = _profiles(settings, profile)
    engine = _engine(settings)
    factory = session_factory(engine)
    sync_profiles(factory, profiles)
    return engine, factory


@app.command()
def publish(
    profile: Annotated[str | None, typer.Option("--profile", help="Only this profile's deliveries.")] = None,
) -> None:
    """Send every due delivery once (new digests, retries); safe to run from several workers at once."""
    from feedsvc.pipeline.publish import publish as publish_due
    from feedsvc.store.db import session_factory

    settings = _settings()
    if profile:
        _profiles(settings, profile)
    engine = _engine(settings)
    try:
        with _progress() as bar:
            task = bar.add_task("publishing", total=None)
            report = publish_due(
                settings,
                session_factory(engine),
                profile=profile,
                on_sent=lambda r: bar.update(task, description=f"publishing: {r.sent} sent"),
            )
    except FeedsvcError as e:
        raise _fail(str(e)) from None
    finally:
        engine.dispose()
    for notice in report.notices:
        err.print(_styled("notice:", "yellow", notice))
    out.print(report.summary(), highlight=False)
    if report.retrying or report.gave_up:
        raise typer.Exit(1)


@app.command()
def cadence(
    profile: Annotated[str, typer.Option("--profile", help="The profile the recipient receives.")],
    to: Annotated[str, typer.Option("--to", help="The recipient: an email address, chat id or directory.")],
    words: Annotated[
        list[str] | None,
        typer.Argument(
            help="Changes, in any order: daily | weekly | a day (mon) | a time (07:30) | a time zone "
            "(Europe/Berlin) | note | no-note. None: show the cadence."
        ),
    ] = None,
    channel: Annotated[str | None, typer.Option("--channel", help="email, telegram or markdown.")] = None,
) -> None:
    """Show or change when a recipient gets their digest: daily or weekly, at their time in their zone."""
    from datetime import UTC, datetime

    from feedsvc.cadence import describe, next_due
    from feedsvc.pipeline.cadence import cadence_for, change_cadence, find_recipient
    from feedsvc.store.db import session_scope

    settings = _settings()
    engine, factory = _synced(settings, profile)
    now = datetime.now(UTC)
    try:
        with session_scope(factory) as session:
            recipient = find_recipient(session, profile, to, channel)
            current = (
                change_cadence(session, recipient, words, now) if words else cadence_for(session, recipient)
            )
            session.commit()
    except (LookupError, ValueError) as e:
        raise _fail(str(e), 2) from None
    finally:
        engine.dispose()
    upcoming = next_due(current, now).strftime("%a %Y-%m-%d %H:%M %Z")
    out.print(f"{profile} to {to}: {describe(current)}; next: {upcoming}", highlight=False)


@app.command()
def deliveries(
    status: Annotated[
        str | None,
        typer.Option("--status", help="Only this status: pending, sending, sent, failed, gave_up, quiet."),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many rows, newest first.")] = 50,
) -> None:
    """Show the outbox: what was sent where, what waits, what failed and why."""
    from feedsvc.store import delivery
    from feedsvc.store.db import session_factory, session_scope

    settings = _settings()
    engine = _engine(settings)
    try:
        with session_scope(session_factory(engine)) as session:
            counts = delivery.delivery_counts(session)
            rows = delivery.deliveries(session, status=status, limit=limit)
    finally:
        engine.dispose()
    table = Table(
        "id", "profile", "day", "channel", "to", "status", "attempts", "sent / next try", "last error"
    )
    for r in rows:
        when = r.sent if r.status == "sent" else (r.due if r.status in ("pending", "failed") else None)
        table.add_row(
            str(r.id),
            r.profile,
            r.day,
            r.channel,
            r.address,
            r.status,
            str(r.attempts),
            when.strftime("%Y-%m-%d %H:%M") if when else "",
            r.last_error[:80],
        )
    out.print(table)
    out.print(", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "the outbox is empty")


@app.command()
def bot() -> None:
    """Run the Telegram bot (long polling): /start CODE, /stop, /digest, /profile, /why N and the buttons."""
    from feedsvc.bot import build_application
    from feedsvc.store.db import session_factory

    settings = _settings()
    if not settings.telegram_bot_token.get_secret_value():
        raise _fail("FEEDSVC_TELEGRAM_BOT_TOKEN is not set: create a bot with @BotFather, set its token", 2)
    engine = _engine(settings)
    try:
        application = build_application(settings, session_factory(engine))
        _check_telegram_token(application.bot)
        application.run_polling()
    finally:
        engine.dispose()


def _check_telegram_token(bot: object) -> None:
    """Ask Telegram who the bot is before polling: a rejected token is one line here, not PTB's retry loop
    logging tracebacks."""
    import asyncio

    from telegram.error import InvalidToken

    async def get_me() -> None:
        async with bot:  # type: ignore[attr-defined]  # initialize() calls getMe; shutdown() after
            pass

    try:
        asyncio.run(get_me())
    except InvalidToken:
        message = "Telegram rejected the bot token (FEEDSVC_TELEGRAM_BOT_TOKEN): check it with @BotFather"
        raise _fail(message, 2) from None


def _service_logging() -> None:
    logging.getLogger().setLevel(logging.INFO)  # the scheduler's skip and misfire lines must show
    for noisy in ("httpx", "apscheduler.executors.default", "apscheduler.scheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _check_secrets(settings: Settings, *, service: bool) -> None:
    """Fail fast, before anything starts, on a configuration that would only fail later."""
    from contextlib import ExitStack

    from feedsvc.pipeline.publish import open_channels, signing_secret

    with ExitStack() as stack:  # builds the channels (no connection yet): a bad SMTP setting shows now
        try:
            if service:
                signing_secret(settings, "the service (feedback, unsubscribe and confirmation links)")
            open_channels(settings, stack)
        except ConfigError as e:
            raise _fail(str(e), 2) from None


def _jobs():
    """The scheduler's jobs, with the static site's export after each digest (FEEDSVC_EXPORT_DIR)."""
    import dataclasses

    from feedsvc.scheduler import default_jobs

    def export(settings: Settings, factory) -> str:
        from feedsvc.web.export import export_site

        return export_site(settings, factory, Path(settings.export_dir)).summary()

    return dataclasses.replace(default_jobs(), export=export)


@app.command()
def worker() -> None:
    """Run the schedule: fetch on FEEDSVC_FETCH_CRON, each profile's digest and publication at its send_at,
    and retries every FEEDSVC_PUBLISH_INTERVAL_SECONDS. Stops cleanly on SIGTERM/SIGINT."""
    from feedsvc.scheduler import build_scheduler, run_forever
    from feedsvc.store.db import session_factory

    settings = _settings()
    profiles = _profiles(settings)
    _check_secrets(settings, service=False)
    _service_logging()
    engine = _engine(settings)
    try:
        scheduler = build_scheduler(settings, session_factory(engine), profiles, jobs=_jobs())
    except ConfigError as e:
        raise _fail(str(e), 2) from None
    try:
        run_forever(scheduler)
    finally:
        engine.dispose()


@app.command()
def serve(
    host: Annotated[str | None, typer.Option("--host", help="Default: FEEDSVC_WEB_HOST.")] = None,
    port: Annotated[int | None, typer.Option("--port", help="Default: FEEDSVC_WEB_PORT.")] = None,
) -> None:
    """Serve the web archive (uvicorn)."""
    settings = _settings()
    _serve_archive(settings, host or settings.web_host, port or settings.web_port)


def _serve_archive(settings: Settings, host: str, port: int) -> None:
    import uvicorn

    from feedsvc.store.db import session_factory
    from feedsvc.web.app import create_app, uvicorn_options

    engine = _engine(settings)
    try:
        uvicorn.run(
            create_app(settings, session_factory(engine), headers_by_server=True),
            host=host,
            port=port,
            **uvicorn_options(settings),
        )
    finally:
        engine.dispose()


@app.command("export-site")
def export_site_cmd(
    out_dir: Annotated[Path, typer.Argument(help="The directory the static site is written to.")],
) -> None:
    """Write the archive as a static site: every published digest, its items' pages, each profile's
    archive and Atom feed, the stylesheet; only what changed since the last export into DIR."""
    from feedsvc.store.db import session_factory
    from feedsvc.web.export import export_site

    settings = _settings()
    engine = _engine(settings)
    try:
        report = export_site(settings, session_factory(engine), out_dir)
    finally:
        engine.dispose()
    out.print(f"{report.summary()}: {out_dir}", soft_wrap=True)


@app.command()
def run() -> None:
    """Everything in one process: the schedule (worker), the web archive (serve) and, with a token, the
    Telegram bot. Stops cleanly on SIGTERM/SIGINT: a running job finishes first."""
    import asyncio

    import uvicorn

    from feedsvc.scheduler import build_scheduler, run_forever
    from feedsvc.store.db import session_factory
    from feedsvc.web.app import create_app, uvicorn_options

    settings = _settings()
    profiles = _profiles(settings)
    _check_secrets(settings, service=True)
    engine = _engine(settings)
    factory = session_factory(engine)
    if settings.telegram_bot_token.get_secret_value():
        from feedsvc.bot import build_application

        _check_telegram_token(build_application(settings, factory).bot)
    _service_logging()
    try:
        scheduler = build_scheduler(settings, factory, profiles, jobs=_jobs())
    except ConfigError as e:
        raise _fail(str(e), 2) from None

    async def serve_all() -> None:
        bot = None
        if settings.telegram_bot_token.get_secret_value():
            from feedsvc.bot import build_application

            bot = build_application(settings, factory)
            await bot.initialize()
            if bot.post_init:
                await bot.post_init(bot)
            await bot.start()
            await bot.updater.start_polling()
        try:
            config = uvicorn.Config(
                create_app(settings, factory, headers_by_server=True),
                host=settings.web_host,
                port=settings.web_port,
                **uvicorn_options(settings),
            )
            await uvicorn.Server(config).serve()
        finally:
            if bot is not None:
                await bot.updater.stop()
                await bot.stop()
                await bot.shutdown()

    try:
        run_forever(scheduler, main=lambda: asyncio.run(serve_all()))
    finally:
        engine.dispose()


def main() -> None:
    """The entry point: an error no command converted still ends as one line on stderr, secrets masked (with
    -v, the whole traceback, masked too)."""
    try:
        app()
    except Exception as e:  # the edge: whatever escaped the commands
        secrets = _known_secrets()
        if _verbose:
            err.print(redaction.redact("".join(traceback.format_exception(e)), secrets), end="")
        err.print(_styled("error:", "bold red", redaction.redact(describe(e), secrets)))
        raise SystemExit(1) from None
