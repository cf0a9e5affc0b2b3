"""Settings (environment, `FEEDSVC_` prefix, `.env`) and profile loading: the only reader of the environment.

Nothing is built at import time: call `Settings()` at the edge and pass the
object down. Profiles are data in a TOML file; `load_profiles` validates it and raises `ConfigError`
naming the file, the profile and the field. Imports only `feedsvc.models`.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StrictBool, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from feedsvc.identity import bare_arxiv_id
from feedsvc.models import ConfigError, Profile, Thread


class Settings(BaseSettings):
    """Every setting feedsvc reads. The README's settings table is generated from these fields."""

    model_config = SettingsConfigDict(env_prefix="FEEDSVC_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("data"), description="Where the SQLite file, digests and caches live.")
    database_url: str = Field(
        "",
        description="SQLAlchemy URL; empty: a SQLite file `feedsvc.db` in the data directory. "
        "PostgreSQL: `postgresql+psycopg://user:password@host:5432/db`.",
    )
    profiles_path: Path = Field(
        Path("profiles.toml"),
        description="The profile TOML file. Unset and absent: the bundled example profile is used.",
    )
    arxiv_rss_url: str = Field(
        "https://rss.arxiv.org/rss",
        description="arXiv's listing feed; categories are appended as `/cs.LG+stat.ML`.",
    )
    arxiv_api_url: str = Field("https://export.arxiv.org/api/query", description="arXiv's search API.")
    arxiv_delay_seconds: float = Field(3.0, description="Pause between arXiv API calls (arXiv asks for 3 s).")
    arxiv_enrich: bool = Field(
        True, description="Ask arXiv's API for fields the listing lacks (comment with page count, dates)."
    )
    semantic: Literal["auto", "on", "off"] = Field(
        "auto",
        description="Sentence-embedding scorer: auto = when `feedsvc[semantic]` is installed; on = required.",
    )
    embedding_max_tokens: int = Field(128, description="Tokens of title and abstract the model reads.")
    embedding_precision: Literal["fp32", "int8"] = Field(
        "fp32", description="The embedding model's arithmetic: fp32, or int8 linear layers (faster)."
    )
    llm_base_url: str = Field(
        "",
        description="OpenAI-compatible chat-completions URL, e.g. `http://127.0.0.1:8080/v1`; empty: none.",
    )
    llm_model: str = Field("", description="The model name sent to the LLM endpoint.")
    llm_api_key: SecretStr = Field(
        SecretStr(""), description="The LLM endpoint's key (a secret); empty for local servers."
    )
    llm_timeout: float = Field(60.0, description="Seconds before an LLM request gives up.")
    llm_retries: int = Field(
        2, description="Retries of a failed LLM request (timeouts, 5xx, 429, invalid JSON)."
    )
    llm_response_format: Literal["auto", "json_object"] = Field(
        "auto",
        description="auto: ask for `json_schema`, then `json_object` with the schema when the endpoint "
        "refuses it (llama-cpp-python does), then plain `json_object`; json_object: start there.",
    )
    llm_max_tokens: int = Field(512, description="Most tokens the LLM may write for one card.")
    llm_judge: bool = Field(
        False,
        description="The LLM grades the top picks against the reader's thread and re-orders them by "
        "grade (off by default; on only with `FEEDSVC_LLM_BASE_URL` set too).",
    )
    llm_judge_top: int = Field(20, ge=1, description="How many of the top picks the LLM judge grades.")
    fulltext_max_bytes: int = Field(
        20_000_000,
        description="Largest full text (HTML or e-print, decoded) read for a pick; a larger one is refused.",
    )
    arxiv_html_url: str = Field(
        "https://arxiv.org/html", description="arXiv's HTML full text; the id is appended."
    )
    arxiv_eprint_url: str = Field(
        "https://arxiv.org/e-print", description="arXiv's LaTeX source; the id is appended."
    )
    library_reads_per_run: int = Field(
        5,
        ge=0,
        description="Library papers whose full text each fetch run reads for the study list (breakdown, "
        "difficulty), one arXiv request per `FEEDSVC_ARXIV_DELAY_SECONDS`; 0: none.",
    )
    http_timeout: float = Field(20.0, description="Seconds before an HTTP request to a source gives up.")
    http_retries: int = Field(3, description="Retries of a failed source request (5xx, 429, timeouts).")
    http_max_wait: float = Field(
        60.0, description="Longest Retry-After or back-off feedsvc will wait inside one run, in seconds."
    )
    http_jitter: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="Up to this fraction of each back-off is drawn off at random, so retries do not bunch.",
    )
    http_max_bytes: int = Field(
        32 << 20,
        gt=0,
        description="Largest answer (decoded, counted as it streams) read from a source or the LLM "
        "endpoint, in bytes; a larger one is refused. Full text has `FEEDSVC_FULLTEXT_MAX_BYTES`.",
    )
    http_deadline: float = Field(
        60.0,
        gt=0,
        description="Seconds one HTTP request may take in all, however slowly the answer drips "
        "(`FEEDSVC_HTTP_TIMEOUT` bounds each wait); the LLM's is at least `FEEDSVC_LLM_TIMEOUT`.",
    )
    youtube_api_key: SecretStr = Field(
        SecretStr(""),
        description="YouTube Data API v3 key (a secret); empty: YouTube is skipped with a notice.",
    )
    youtube_api_url: str = Field(
        "", description="Base URL of the YouTube Data API; empty: Google's (set only for a replay or proxy)."
    )
    youtube_daily_quota: int = Field(10_000, description="YouTube API units feedsvc may spend per day.")
    youtube_channels: list[str] = Field(
        [], description="Channel ids whose uploads are read for topic lectures (cheap calls), as a JSON list."
    )
    youtube_min_duration_s: int = Field(
        240, description="Videos shorter than this (Shorts, clips) are dropped."
    )
    youtube_topic_searches: int = Field(2, description="Topic searches per run (100 quota units each).")
    hn_api_url: str = Field("https://hn.algolia.com/api/v1", description="Hacker News' Algolia API.")
    hn_min_points: int = Field(20, description="Hacker News stories with fewer points are ignored.")
    lobsters_url: str = Field("https://lobste.rs", description="Lobsters' base URL.")
    lobsters_tags: list[str] = Field(
        [], description="Lobsters tags to keep, as a JSON list; empty keeps all."
    )
    disabled_sources: list[str] = Field(
        [],
        description='Sources not to run, as a JSON list, e.g. `["lobsters"]` (arxiv, youtube, hn, lobsters).',
    )
    backoff_minutes: float = Field(
        30.0,
        description="After repeated failures a source waits this long, doubling per failure (max 1 day).",
    )
    fetch_min_interval_seconds: float = Field(
        600.0,
        description="The scheduler's fetches skip a source whose last good run began less than this long "
        "ago (`feedsvc fetch` always fetches).",
    )
    source_run_stale_seconds: float = Field(
        7200.0,
        description="A source run still running after this long was interrupted (its process died): it is "
        "recorded as failed. Also the longest a fetch waits for another process fetching the same source.",
    )
    user_agent: str = Field(
        "feedsvc/0.1 (research digest; mailto:feedsvc@localhost)",
        description="User-Agent sent to every source; arXiv asks for a contact.",
    )

    base_url: str = Field(
        "http://127.0.0.1:8000",
        description="The web archive's public URL: permalinks, feedback, unsubscribe and confirmation links.",
    )
    secret_key: SecretStr = Field(
        SecretStr(""),
        description="Signs feedback, unsubscribe and confirmation links (a secret, 32+ characters); "
        "email delivery and the web's write endpoints refuse to start without it.",
    )
    smtp_host: str = Field("", description="SMTP server for email delivery; empty: email is not sent.")
    smtp_port: int = Field(587, description="SMTP port (587 STARTTLS, 465 TLS, 25 or 1025 plain).")
    smtp_security: Literal["starttls", "tls", "none"] = Field(
        "starttls", description="SMTP transport security: starttls, tls (implicit, port 465) or none."
    )
    smtp_username: str = Field("", description="SMTP login; empty: no authentication.")
    smtp_password: SecretStr = Field(SecretStr(""), description="SMTP password (a secret).")
    smtp_timeout: float = Field(30.0, description="Seconds before an SMTP connection or command gives up.")
    mail_from: str = Field(
        "feedsvc <feedsvc@localhost>", description="The From address of digests and confirmations."
    )
    telegram_bot_token: SecretStr = Field(
        SecretStr(""), description="The Telegram bot's token from @BotFather (a secret); empty: no Telegram."
    )
    telegram_api_url: str = Field(
        "",
        description="Bot API base URL; empty: Telegram's (set for a local Bot API server or test double).",
    )
    telegram_chat_interval: float = Field(
        1.0, description="Seconds between two messages to one chat (Telegram allows about one per second)."
    )
    telegram_global_rate: float = Field(
        25.0, description="Messages per second over all chats (Telegram's limit is about 30)."
    )
    delivery_max_attempts: int = Field(
        6, description="A delivery is given up after this many failed attempts (with a notice)."
    )
    delivery_retry_seconds: float = Field(
        60.0, description="First wait before a failed delivery is retried; doubles per attempt (max 1 day)."
    )
    smtp_connections: int = Field(
        4, description="SMTP connections one `feedsvc publish` sends through side by side."
    )
    delivery_lease_seconds: float = Field(
        300.0,
        description="A claimed delivery whose worker died is claimed again after this long (the one "
        "in-flight message may then repeat).",
    )

    fetch_cron: str = Field(
        "15 */3 * * *", description="When `feedsvc run`/`worker` fetches the sources (crontab, UTC)."
    )
    publish_interval_seconds: int = Field(
        60, description="How often the worker publishes due deliveries (retries included)."
    )
    misfire_grace_seconds: int = Field(
        6 * 3600,
        description="A job missed (machine asleep) runs once on waking if this late or less; else skipped.",
    )
    web_host: str = Field("127.0.0.1", description="Address `feedsvc serve`/`run` listens on.")
    web_port: int = Field(8000, description="Port `feedsvc serve`/`run` listens on.")
    export_dir: str = Field(
        "",
        description="When set, `feedsvc run`/`worker` writes the static site (`feedsvc export-site`) to this "
        "directory after each digest is built and published; empty: no export.",
    )

    def secret_values(self) -> list[str]:
        """The secrets' values that are set (and a password inside the database URL), for redaction."""
        values = [v.get_secret_value() for v in vars(self).values() if isinstance(v, SecretStr)]
        password = urlsplit(self.database_url).password or ""
        return [v for v in (*values, password) if v]

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'feedsvc.db').as_posix()}"

    def digest_dir(self) -> Path:
        return self.data_dir / "digests"


# --- profiles ------------------------------------------------------------------------------------------


class _ThreadIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    about: str = ""
    keywords: list[str] = []
    seed_papers: list[str] = []
    exclude: list[str] = []
    share: float = Field(1.0, gt=0, le=100, allow_inf_nan=False)

    @field_validator("seed_papers")
    @classmethod
    def _arxiv_ids(cls, ids: list[str]) -> list[str]:
        out = []
        for raw in ids:
            try:
                out.append(bare_arxiv_id(raw))
            except ValueError as e:
                raise ValueError(f"{raw!r} is not an arXiv id (expected e.g. '1801.01290')") from e
        return out


class _TelegramIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    chat_id: int


class _EmailIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")


class _MarkdownIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dir: str = Field(min_length=1)


class _ChannelsIn(BaseModel):
    """The channels a profile may name; any other name is an error rather than silently ignored."""

    model_config = ConfigDict(extra="forbid")
    telegram: _TelegramIn | None = None
    email: _EmailIn | None = None
    markdown: _MarkdownIn | None = None


class _ProfileIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_-]*$", description="a slug: lower-case letters, digits, - and _"
    )
    timezone: str = "UTC"
    send_at: str = Field("07:30", pattern=r"^([01]\d|2[0-3]):[0-5]\d$")
    papers: int = Field(3, ge=0, le=20)
    videos: int = Field(2, ge=0, le=20)
    max_age_days: int = Field(365, ge=1, le=36_500)
    arxiv_categories: list[str] = []
    exclude: list[str] = []
    explore: StrictBool = False  # TOML has true/false: "yes" is a mistake, not a truthy string
    thread: list[_ThreadIn] = Field(min_length=1)
    channels: _ChannelsIn = _ChannelsIn()

    @field_validator("timezone")
    @classmethod
    def _zone(cls, tz: str) -> str:
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError(f"unknown time zone {tz!r} (expected e.g. 'Europe/Berlin')") from e
        return tz


def _field_path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(profile)"


def parse_profiles(data: dict[str, Any], origin: str) -> list[Profile]:
    """Validate the parsed TOML `data`; `origin` names the file in error messages."""
    raw = data.get("profile")
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{origin}: defines no profile (expected at least one [[profile]] table)")
    profiles: list[Profile] = []
    seen: set[str] = set()
    for i, entry in enumerate(raw):
        label = entry.get("name") if isinstance(entry, dict) and entry.get("name") else f"#{i + 1}"
        try:
            p = _ProfileIn.model_validate(entry)
        except ValidationError as e:
            problems = "; ".join(
                f"field '{_field_path(err['loc'])}': {err['msg'].removeprefix('Value error, ')}"
                + (f" (got {err['input']!r})" if not isinstance(err["input"], dict | list) else "")
                for err in e.errors()
            )
            raise ConfigError(f"{origin}: profile '{label}': {problems}") from None
        if p.name in seen:
            raise ConfigError(f"{origin}: profile '{p.name}': field 'name': defined twice")
        seen.add(p.name)
        profiles.append(
            Profile(
                name=p.name,
                timezone=p.timezone,
                send_at=p.send_at,
                papers=p.papers,
                videos=p.videos,
                max_age_days=p.max_age_days,
                arxiv_categories=tuple(p.arxiv_categories),
                exclude=tuple(p.exclude),
                explore=p.explore,
                channels=p.channels.model_dump(exclude_none=True),
                threads=tuple(
                    Thread(
                        name=t.name,
                        about=t.about,
                        keywords=tuple(t.keywords),
                        seed_papers=tuple(t.seed_papers),
                        exclude=tuple(t.exclude),
                        share=t.share,
                    )
                    for t in p.thread
                ),
            )
        )
    return profiles


def load_profiles(path: Path) -> list[Profile]:
    """Read and validate a profile TOML file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: profile file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read profile file: {e}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    return parse_profiles(data, str(path))


def example_profiles_path() -> Path:
    """The bundled example profile (the seed reader's), shipped inside the package."""
    return Path(__file__).parent / "sample" / "profiles.example.toml"


def profiles_for(settings: Settings) -> tuple[Path, list[Profile]]:
    """The configured profiles; the bundled example only when no path was set and `profiles.toml` is absent.

    A path set explicitly (FEEDSVC_PROFILES_PATH) that does not exist is an error, never a silent fallback.
    """
    path = settings.profiles_path
    if "profiles_path" not in settings.model_fields_set and not path.exists():
        path = example_profiles_path()
    return path, load_profiles(path)


def settings_table() -> str:
    """The README's settings table, generated from the fields above (one table is the code and the docs)."""
    import json

    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, f in Settings.model_fields.items():
        value = f.default.get_secret_value() if isinstance(f.default, SecretStr) else f.default
        if isinstance(value, list):
            value = json.dumps(value)
        default = "(empty)" if value == "" else f"`{value}`"
        rows.append(f"| `FEEDSVC_{name.upper()}` | {default} | {f.description} |")
    return "\n".join(rows)
