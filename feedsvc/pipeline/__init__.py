"""The day's runs, one module each: the only place the stages are wired together.

A day goes: on `fetch_cron`, `collect` runs every source into the store (recording each run, backing off
a failing source); at each profile's `send_at`, `digest` builds that profile's digest (ranking, the
author-talk check of `talks`, the cards, the texts of `notes`) and `publish` delivers it through the
outbox, which also retries what is due every `publish_interval_seconds`. Beside the day: `library`
imports a reader's papers (and `fetch --ids`), and `subscribe` adds recipients (Telegram codes, email
double opt-in).

The edges (cli, scheduler, web, bot, demo) import these submodules; this package re-exports nothing.
"""
