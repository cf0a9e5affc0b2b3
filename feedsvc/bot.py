"""The Telegram bot: commands and button taps, wired in `build_application`.

- `/start CODE` subscribes this chat to a profile with a one-time code from
  `feedsvc subscribe telegram --profile P`; `/stop` unsubscribes it;
- `/digest` sends the latest bundle now; `/profile` shows what feedsvc knows about you;
  `/why N` says why card N of the latest bundle was picked; `/library` shows the last papers of the
  study list, with links; `/settings` shows or changes when this chat's
  digests come (daily or weekly, a time in a zone, a line on a quiet day: `feedsvc.cadence`);
- a tap on 👍, 👎, "more like this" or "less like this" under a card is stored as feedback (the next
  ranking uses it), answered, and the buttons then show the vote; "∑ equation image" sends the key
  equation as a picture.

Handlers are small methods of `_Handlers` (which holds the settings, the store and the clock) and read the
store through `feedsvc.store`; the formatting is the Telegram renderer's and the buttons are the Telegram
channel's. An edge: nothing imports it but the CLI.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker
from telegram import BotCommand, InputFile, Update
from telegram.constants import ParseMode
from telegram.error import TelegramError
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes

from feedsvc.cadence import describe
from feedsvc.config import Settings
from feedsvc.deliver.telegram import Callback, parse_callback, vote_keyboard
from feedsvc.models import VOTES, Card, Digest, Recipient
from feedsvc.pipeline.cadence import cadence_for, change_cadence
from feedsvc.pipeline.study import study_list
from feedsvc.render.equation_image import latex_to_png
from feedsvc.render.math_text import latex_to_unicode
from feedsvc.render.study import study_telegram
from feedsvc.render.telegram import plain_emphasis, render_telegram
from feedsvc.store import delivery, queries
from feedsvc.store.db import session_scope

log = logging.getLogger(__name__)

COMMANDS = (
    ("start", "subscribe this chat: /start CODE"),
    ("stop", "unsubscribe this chat"),
    ("digest", "the latest bundle, now"),
    ("profile", "what feedsvc knows about you"),
    ("why", "why card N was picked: /why N"),
    ("library", "your study list: the last papers added"),
    ("settings", "when your digest comes: /settings weekly mon 08:00"),
)
SETTINGS_HELP = (
    "Change it with, e.g., <code>/settings weekly mon 08:00 Europe/Berlin</code> or "
    "<code>/settings daily 07:15</code>; <code>/settings note</code> sends one line on a day with nothing "
    "above the bar (<code>no-note</code>: nothing)."
)
Clock = Callable[[], datetime]


def _chat(update: Update) -> str:
    return str(update.effective_chat.id) if update.effective_chat else ""


def _send_text(update: Update, text: str) -> object:
    assert update.effective_message is not None
    return update.effective_message.reply_text(text, parse_mode=ParseMode.HTML, disable_web_page_preview=True)


def _subscriptions(factory: sessionmaker[Session], chat: str) -> list[Recipient]:
    with session_scope(factory) as session:
        return delivery.recipients_at(session, "telegram", chat)


def _not_subscribed(update: Update) -> object:
    return _send_text(
        update,
        "This chat receives no digest yet. Ask for a code with "
        "<code>feedsvc subscribe telegram --profile NAME</code> and send <code>/start CODE</code>.",
    )


def build_application(
    settings: Settings, factory: sessionmaker[Session], *, clock: Clock | None = None
) -> Application:
    """The bot with every handler registered; run it with `run_polling()` or drive it yourself."""
    handlers = _Handlers(settings, factory, clock or (lambda: datetime.now(UTC)))
    builder = Application.builder().token(settings.telegram_bot_token.get_secret_value())
    if settings.telegram_api_url:
        base = settings.telegram_api_url.rstrip("/")
        builder = builder.base_url(f"{base}/bot").base_file_url(f"{base}/file/bot")
    app = builder.post_init(_set_command_menu).build()
    app.add_handler(CommandHandler("start", handlers.start))
    app.add_handler(CommandHandler("stop", handlers.stop))
    app.add_handler(CommandHandler("digest", handlers.latest))
    app.add_handler(CommandHandler("profile", handlers.profile))
    app.add_handler(CommandHandler("why", handlers.why))
    app.add_handler(CommandHandler("library", handlers.library))
    app.add_handler(CommandHandler("settings", handlers.cadence))
    app.add_handler(CallbackQueryHandler(handlers.tap))
    return app


async def _set_command_menu(app: Application) -> None:
    """Show the commands in Telegram's menu; a failure is only logged."""
    try:
        await app.bot.set_my_commands([BotCommand(c, d) for c, d in COMMANDS])
    except TelegramError as e:  # a cosmetic step: the bot works without its command menu
        log.warning("could not set the bot's command menu: %s", e)


@dataclass(frozen=True)
class _Handlers:
    """The bot's command and button handlers, and what they share: the settings, the store and the clock."""

    settings: Settings
    factory: sessionmaker[Session]
    now: Clock

    async def start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """`/start CODE`: subscribe this chat with a one-time code (a greeting without one)."""
        if not context.args:
            await _send_text(
                update,
                "Hello! To receive a research digest here, ask for a one-time code with "
                "<code>feedsvc subscribe telegram --profile NAME</code> and send <code>/start CODE</code>.",
            )
            return
        try:
            with session_scope(self.factory) as session:
                redeemed = delivery.redeem_subscription(
                    session, "telegram", context.args[0], self.now(), address=_chat(update)
                )
                profile = queries.profile_config(session, redeemed.recipient.profile)
        except LookupError as e:
            await _send_text(update, html.escape(str(e).strip("'\"")))
            return
        when = f"{profile.get('send_at', '07:30')} {profile.get('timezone', 'UTC')}" if profile else ""
        state = "Subscribed" if redeemed.new else "Already subscribed"
        await _send_text(
            update,
            f"{state} to <b>{html.escape(redeemed.recipient.profile)}</b>. The digest arrives daily at "
            f"{html.escape(when)}; /digest sends the latest now, /stop ends it.",
        )

    async def stop(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """`/stop`: unsubscribe this chat from every profile it receives."""
        subs = _subscriptions(self.factory, _chat(update))
        if not subs:
            await _not_subscribed(update)
            return
        with session_scope(self.factory) as session:
            for r in subs:
                delivery.deactivate_recipient(session, r.id, "/stop in Telegram", self.now())
        names = ", ".join(html.escape(r.profile) for r in subs)
        await _send_text(update, f"Unsubscribed from {names}. /start with a new code subscribes again.")

    async def latest(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """`/digest`: send each subscription's latest digest now, with the vote buttons."""
        subs = _subscriptions(self.factory, _chat(update))
        if not subs:
            await _not_subscribed(update)
            return
        for r in subs:
            with session_scope(self.factory) as session:
                digest = queries.latest_digest(session, r.profile)
            if digest is None:
                await _send_text(update, f"No digest for {html.escape(r.profile)} yet.")
                continue
            await self._send_digest(context, r, digest)

    async def _send_digest(self, context: ContextTypes.DEFAULT_TYPE, r: Recipient, digest: Digest) -> None:
        """Send `digest` to the recipient's chat, the buttons under the last message of each card."""
        rendered = render_telegram(digest, self.settings.base_url)
        cards = {c.key: c for c in digest.cards}
        last = {key: i for i, key in enumerate(rendered.part_keys) if key}  # buttons under a card's end
        for i, (part, key) in enumerate(zip(rendered.parts, rendered.part_keys, strict=True)):
            markup = None
            if key in cards and last[key] == i:
                markup = vote_keyboard(r.id, key, _has_equation(cards[key]), None)
            await context.bot.send_message(
                int(r.address),
                part,
                parse_mode=ParseMode.HTML,
                disable_web_page_preview=True,
                reply_markup=markup,
            )

    async def profile(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """`/profile`: what feedsvc knows about each subscription of this chat."""
        subs = _subscriptions(self.factory, _chat(update))
        if not subs:
            await _not_subscribed(update)
            return
        for r in subs:
            with session_scope(self.factory) as session:
                config = queries.profile_config(session, r.profile) or {}
                votes = queries.feedback_for(session, r.profile)
            await _send_text(update, _profile_text(r.profile, config, votes))

    async def library(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """`/library`: the last papers of each subscription's study list, with links."""
        subs = _subscriptions(self.factory, _chat(update))
        if not subs:
            await _not_subscribed(update)
            return
        for r in subs:
            with session_scope(self.factory) as session:
                shelf = study_list(session, r.profile)
            if shelf is not None:
                await _send_text(update, study_telegram(shelf, self.settings.base_url))

    async def cadence(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """`/settings [WORDS]`: show, or change, when this chat's digests come (every profile it gets)."""
        subs = _subscriptions(self.factory, _chat(update))
        if not subs:
            await _not_subscribed(update)
            return
        words = list(context.args or [])
        try:
            with session_scope(self.factory) as session:
                lines = [
                    f"<b>{html.escape(r.profile)}</b>: "
                    + html.escape(
                        describe(
                            change_cadence(session, r, words, self.now())
                            if words
                            else cadence_for(session, r)
                        )
                    )
                    for r in subs
                ]
        except ValueError as e:
            await _send_text(update, f"Nothing changed: {html.escape(str(e))}.\n{SETTINGS_HELP}")
            return
        head = "Saved. From the next send time on:\n" if words else ""
        await _send_text(update, head + "\n".join(lines) + ("" if words else f"\n{SETTINGS_HELP}"))

    async def why(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """`/why N`: why card N of the latest digest was picked."""
        subs = _subscriptions(self.factory, _chat(update))
        if not subs:
            await _not_subscribed(update)
            return
        try:
            n = int(context.args[0]) if context.args else 0
        except ValueError:
            n = 0
        with session_scope(self.factory) as session:
            digest = queries.latest_digest(session, subs[0].profile)
        if digest is None or not 1 <= n <= len(digest.cards):
            count = len(digest.cards) if digest else 0
            await _send_text(update, f"Send <code>/why N</code> with N from 1 to {count}.")
            return
        await _send_text(update, _why_text(digest, n))

    async def tap(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """A button under a card: store the vote and show it on the buttons, or send the equation image."""
        query = update.callback_query
        if query is None:
            return
        parsed = parse_callback(query.data or "")
        with session_scope(self.factory) as session:
            found = delivery.recipient_by_id(session, parsed.recipient_id) if parsed else None
        if parsed is None or found is None or found[0].address != _chat(update) or not found[1]:
            await query.answer("This button is not valid for this chat any more.", show_alert=True)
            return
        recipient = found[0]
        card = self._record_tap(recipient, parsed)
        if card is None:
            await query.answer("That card is not in your digests.", show_alert=True)
            return
        if parsed.action == "equation":
            await _send_equation(query, context, card)
            return
        await query.answer(f"Noted: {VOTES[parsed.action].words}. Your next digest uses it.")
        try:
            await query.edit_message_reply_markup(
                vote_keyboard(recipient.id, card.key, _has_equation(card), parsed.action)
            )
        except TelegramError as e:  # e.g. "message is not modified" on a second identical tap
            log.info("could not update the buttons: %s", e)

    def _record_tap(self, recipient: Recipient, parsed: Callback) -> Card | None:
        """The tapped card (None when it is not in the recipient's digests), its vote stored unless the tap
        asks for the equation."""
        with session_scope(self.factory) as session:
            key = queries.resolve_key(
                session, recipient.profile, parsed.key or parsed.key_hash.removeprefix("h")
            )
            card = queries.card_in_digests(session, recipient.profile, key) if key else None
            if card is not None and parsed.action != "equation":
                queries.record_feedback(
                    session,
                    recipient.profile,
                    card.key,
                    parsed.action,
                    channel="telegram",
                    now=self.now(),
                    recipient_id=recipient.id,
                )
        return card


def _has_equation(card: Card) -> bool:
    return any(q.is_math for q in card.punch)


async def _send_equation(query, context: ContextTypes.DEFAULT_TYPE, card: Card) -> None:
    latex = next((q.text for q in card.punch if q.is_math), "")
    png = latex_to_png(latex) if latex else None
    if png is None:
        await query.answer(
            "This equation could not be drawn; it is shown as text in the card.", show_alert=True
        )
        return
    await query.answer()
    caption = f"{card.title}\n{latex_to_unicode(latex)}"
    if len(caption) > 1000:
        caption = caption[:999] + "…"
    await context.bot.send_photo(
        query.message.chat.id, InputFile(png, filename="equation.png"), caption=caption
    )


def _profile_text(name: str, config: dict, votes: list) -> str:
    lines = [
        f"<b>{html.escape(name)}</b>: {config.get('papers', 3)} papers and {config.get('videos', 2)} videos"
    ]
    when = f"{config.get('send_at', '')} {config.get('timezone', '')}"
    lines[0] += f" daily at {html.escape(when)}"
    for t in config.get("threads", []):
        keywords = ", ".join(t.get("keywords", [])[:6])
        lines.append(f"• <b>{html.escape(t.get('name', ''))}</b>: {html.escape(t.get('about', '')[:200])}")
        if keywords:
            lines.append(f"  <i>{html.escape(keywords)}</i>")
    counts = (f"{v.emoji or v.phrase} {sum(f.vote == v.name for f in votes)}" for v in VOTES.values())
    lines.append(f"Your votes so far: {', '.join(counts)}.")
    return "\n".join(lines)


def _why_text(digest: Digest, n: int) -> str:
    """Card n's match in words and the ranker's evidence behind it: the score and, a line each, its
    parts and weights, quality and similarities."""
    card = digest.cards[n - 1]
    lines = [
        f"<b>{n}. {html.escape(card.title)}</b>",
        f"Thread: <b>{html.escape(card.thread)}</b>, score {card.score:.3f}"
        f"{' (an exploration pick)' if card.exploration else ''}.",
    ]
    if card.why:
        lines.append(html.escape(plain_emphasis(card.why)))
    lines += [f"• {html.escape(plain_emphasis(e))}" for e in card.evidence]
    return "\n".join(lines)[:4000]
