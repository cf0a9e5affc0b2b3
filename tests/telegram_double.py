"""A TEST DOUBLE of the Telegram Bot API (it stands in for api.telegram.org; it is not a mock of our code).

`TelegramDouble` is a `feedsvc.replay.ReplayServer` on loopback with one callable prefix route, `/bot*`,
answering `/bot<token>/<method>` like Telegram does, in the Bot API's JSON shapes, so that
python-telegram-bot's real request layer (HTTPXRequest) talks to it unchanged:

    with TelegramDouble() as tg:
        bot = Bot(tg.token, base_url=tg.base_url)          # PTB: base_url + token + "/" + method
        channel = TelegramChannel(tg.token, base_url=tg.api_url)
        ...
        tg.messages(chat_id=42)                              # what arrived, in order
        tg.fail_next(1, "flood", chat_id=42)                 # next call for chat 42 answers 429
        tg.enqueue_message(42, "/start")                     # an Update for getUpdates
        tg.enqueue_callback(42, "f:7:u:arxiv:2411.18612", message_id=3)

Methods: getMe, sendMessage, sendPhoto (multipart upload), editMessageReplyMarkup, answerCallbackQuery,
getUpdates (queued updates, offset confirms, waits at most `poll_wait` seconds when empty),
deleteWebhook (drop_pending_updates honoured), setWebhook, getWebhookInfo, setMyCommands, getMyCommands,
deleteMyCommands, sendChatAction, close, logOut. Anything else answers 404 as Telegram does.

It validates like Telegram and answers 400 in Telegram's error shape (`{"ok": false, "error_code": 400,
"description": "Bad Request: ..."}`): HTML parse mode (only Telegram's tags, properly nested and closed,
valid character entities, `a href` http(s) or tg:// only), text at most 4096 UTF-16 code units after
entity parsing, caption at most 1024, callback_data 1-64 bytes, reply_markup valid JSON with buttons
of the right shape. It is STRICTER than Telegram in three documented ways, so that tests catch our
mistakes rather than Telegram's leniency: a bare `>` or an `&` that starts no entity is refused (Telegram
asks for them escaped but tolerates some), a blockquote inside a blockquote or any tag inside pre/code
(except pre's language `code`) is refused (Telegram would drop the entity), and `a href` must be
http(s) or tg://.

Faults: `fail_next(n, kind, chat_id=None, method=None)` makes the next n matching calls answer
"flood" (429, retry_after), "blocked" (403 bot was blocked by the user), "bad_gateway" (502), "drop"
(the connection closes without an answer) or "slow" (answers after `delay` seconds). `block(chat_id)`
blocks a chat for good; `forget(chat_id)` makes it answer 400 "chat not found".
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any
from urllib.parse import parse_qsl

from feedsvc.replay import ReplayServer, Reply, Request

TOKEN = "123456789:TEST-double-token_AbCdEfGh"
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
JSON_PARAMS = {
    "reply_markup",
    "link_preview_options",
    "entities",
    "caption_entities",
    "commands",
    "scope",
    "allowed_updates",
    "reply_parameters",
}
INT_PARAMS = {"chat_id", "message_id", "offset", "limit", "timeout", "cache_time", "user_id"}
BOT_USER = {
    "id": 123456789,
    "is_bot": True,
    "first_name": "feedsvc test bot",
    "username": "feedsvc_test_bot",
    "can_join_groups": True,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}
FAULTS = {"flood", "blocked", "bad_gateway", "drop", "slow"}

# Telegram's HTML: tag -> entity type. span needs class="tg-spoiler"; code inside pre may name a language.
TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
    "a": "text_link",
    "code": "code",
    "pre": "pre",
    "blockquote": "blockquote",
    "tg-emoji": "custom_emoji",
}
_ENTITY = re.compile(r"&(?:(lt|gt|amp|quot);|#([0-9]{1,7});|#[xX]([0-9a-fA-F]{1,6});)")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


class HtmlError(ValueError):
    """Telegram's "can't parse entities" reason for a text."""


def utf16_len(s: str) -> int:
    return len(s.encode("utf-16-le")) // 2


@dataclass
class _Open:
    tag: str
    attrs: dict[str, str]
    offset: int  # in UTF-16 units of the visible text


def parse_html(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Telegram HTML -> (visible text, message entities); raises HtmlError with Telegram's wording."""
    out: list[str] = []
    length = 0  # UTF-16 units of out
    entities: list[dict[str, Any]] = []
    stack: list[_Open] = []
    i = 0

    def at(pos: int) -> int:
        return len(text[:pos].encode("utf-8"))

    while i < len(text):
        ch = text[i]
        if ch == "&":
            m = _ENTITY.match(text, i)
            if m is None:
                raise HtmlError(f"Character entity expected at byte offset {at(i)}")
            if m.group(1):
                decoded = _NAMED[m.group(1)]
            else:
                code = int(m.group(2)) if m.group(2) else int(m.group(3), 16)
                if code == 0 or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                    raise HtmlError(f"Wrong character entity at byte offset {at(i)}")
                decoded = chr(code)
            out.append(decoded)
            length += utf16_len(decoded)
            i = m.end()
            continue
        if ch == ">":
            raise HtmlError(f"Unescaped '>' at byte offset {at(i)}")  # stricter than Telegram
        if ch != "<":
            out.append(ch)
            length += utf16_len(ch)
            i += 1
            continue
        end = text.find(">", i)
        if end < 0:
            raise HtmlError(f"Unclosed start tag at byte offset {at(i)}")
        inside = text[i + 1 : end]
        if inside.startswith("/"):
            name = inside[1:].strip().lower()
            if not stack:
                raise HtmlError(f"Unexpected end tag at byte offset {at(i)}")
            if name != stack[-1].tag:
                expected = stack[-1].tag
                raise HtmlError(
                    f'Unmatched end tag at byte offset {at(i)}, expected "</{expected}>", found "</{name}>"'
                )
            opened = stack.pop()
            entity = _entity(opened, length)
            duplicate = (
                entities
                and entity is not None
                and entity["type"] == "pre"
                and all(entities[-1].get(k) == entity[k] for k in ("type", "offset", "length"))
            )  # <pre><code class="language-x"> is one pre entity with a language
            if entity is not None and not duplicate:
                entities.append(entity)
            i = end + 1
            continue
        m = re.match(r"([a-zA-Z][a-zA-Z0-9-]*)", inside)
        if m is None:
            raise HtmlError(f"Empty tag name at byte offset {at(i)}")
        name = m.group(1).lower()
        if name not in TAGS:
            raise HtmlError(f'Unsupported start tag "{name}" at byte offset {at(i)}')
        attrs = _attributes(inside[m.end() :], at(i))
        _check_start(name, attrs, stack, at(i))
        stack.append(_Open(name, attrs, length))
        i = end + 1
    if stack:
        raise HtmlError(f'Can\'t find end tag corresponding to start tag "{stack[-1].tag}"')
    return "".join(out), sorted(entities, key=lambda e: (e["offset"], -e["length"]))


def _attributes(rest: str, offset: int) -> dict[str, str]:
    attrs: dict[str, str] = {}
    pattern = re.compile(r"""\s*([a-zA-Z-]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?\s*""")
    pos = 0
    while pos < len(rest.rstrip("/").rstrip()):
        m = pattern.match(rest, pos)
        if m is None or m.end() == pos:
            raise HtmlError(f"Expected equal sign in declaration of an attribute at byte offset {offset}")
        raw = next((g for g in m.groups()[1:] if g is not None), "")
        value = _ENTITY.sub(
            lambda e: (
                _NAMED.get(e.group(1) or "", "")
                or chr(int(e.group(2)) if e.group(2) else int(e.group(3), 16))
            ),
            raw,
        )
        attrs[m.group(1).lower()] = value
        pos = m.end()
    return attrs


def _check_start(name: str, attrs: dict[str, str], stack: list[_Open], offset: int) -> None:
    inside = [o.tag for o in stack]
    if ("pre" in inside or "code" in inside) and not (name == "code" and stack[-1].tag == "pre"):
        raise HtmlError(
            f'Tag "{name}" inside "{stack[-1].tag}" at byte offset {offset}: pre and code '
            "entities can't contain other entities"
        )
    if name == "code" and "class" in attrs and not (stack and stack[-1].tag == "pre"):
        raise HtmlError(
            f"A programming language can't be specified for a standalone code tag at byte offset {offset}"
        )
    if name == "code" and "class" in attrs and not re.fullmatch(r"language-[\w+#.-]+", attrs["class"]):
        raise HtmlError(f"Wrong code class at byte offset {offset}")
    if name == "blockquote" and "blockquote" in inside:
        raise HtmlError(f"Blockquote entities can't be nested, at byte offset {offset}")
    if name == "a":
        if "a" in inside:
            raise HtmlError(f"Links can't be nested, at byte offset {offset}")
        url = attrs.get("href", "")
        if not re.match(r"^(https?://[^\s]+|tg://\S+)$", url, re.I):
            raise HtmlError(f'Unsupported URL "{url}" in a link at byte offset {offset}')
    if name == "span" and attrs.get("class") != "tg-spoiler":
        raise HtmlError(f'Tag "span" must have class "tg-spoiler" at byte offset {offset}')
    if name == "tg-emoji" and not attrs.get("emoji-id", "").isdigit():
        raise HtmlError(f"Custom emoji entity must have an emoji-id at byte offset {offset}")


def _entity(opened: _Open, end: int) -> dict[str, Any] | None:
    if end == opened.offset:
        return None  # Telegram drops empty entities
    entity: dict[str, Any] = {
        "type": TAGS[opened.tag],
        "offset": opened.offset,
        "length": end - opened.offset,
    }
    if opened.tag == "a":
        entity["url"] = opened.attrs["href"]
    if opened.tag == "blockquote" and "expandable" in opened.attrs:
        entity["type"] = "expandable_blockquote"
    if opened.tag == "code" and "class" in opened.attrs:
        entity = {
            "type": "pre",
            "offset": opened.offset,
            "length": end - opened.offset,
            "language": opened.attrs["class"].removeprefix("language-"),
        }
    return entity


def markup_problem(markup: Any) -> str | None:
    """Why a reply_markup would be refused, in Telegram's words; None if it is fine."""
    if not isinstance(markup, dict):
        return "can't parse reply keyboard markup JSON object"
    if "inline_keyboard" not in markup:
        return None  # other keyboards (reply, remove, force reply) are not validated here
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        return "can't parse inline keyboard button: InlineKeyboardButton must be an Object"
    for row in rows:
        for button in row:
            if not isinstance(button, dict) or not isinstance(button.get("text"), str) or not button["text"]:
                return "can't parse inline keyboard button: Text buttons are unallowed in the inline keyboard"
            kinds = [k for k in button if k != "text"]
            if len(kinds) != 1:
                return "can't parse inline keyboard button: exactly one of the optional fields must be used"
            if "callback_data" in button:
                data = button["callback_data"]
                if not isinstance(data, str) or not 1 <= len(data.encode("utf-8")) <= 64:
                    return "BUTTON_DATA_INVALID"
            if "url" in button and not re.match(r"^(https?|tg)://\S+$", str(button["url"]), re.I):
                return "BUTTON_URL_INVALID"
    return None


@dataclass
class Call:
    """One request to the double: the method, its decoded parameters and uploads, and the answer."""

    method: str
    params: dict[str, Any]
    files: dict[str, bytes] = field(default_factory=dict)
    status: int = 200
    answer: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == 200

    @property
    def chat_id(self) -> int | str | None:
        return self.params.get("chat_id")


@dataclass
class _Fault:
    kind: str
    remaining: int
    chat_id: int | None
    method: str | None
    retry_after: int
    delay: float


class _DropConnection(Exception):
    """Raised by the route to close the connection without an answer (the "drop" fault)."""


class _Server(ReplayServer):
    def start(self) -> _Server:
        super().start()
        httpd = self._httpd
        if httpd is not None:  # quiet the expected traceback of a dropped connection; report others
            original = httpd.handle_error

            def handle_error(request: Any, client_address: Any) -> None:
                import sys

                if not isinstance(sys.exc_info()[1], _DropConnection):
                    original(request, client_address)

            httpd.handle_error = handle_error  # type: ignore[method-assign]
        return self


class TelegramDouble:
    """The Bot API on loopback for tests. `api_url` is the server's root, `base_url` PTB's `base_url`."""

    def __init__(self, token: str = TOKEN, *, poll_wait: float = 0.2) -> None:
        self.token = token
        self.poll_wait = poll_wait
        self.calls: list[Call] = []
        self.commands: list[dict[str, Any]] = []
        self.answered: list[dict[str, Any]] = []  # answerCallbackQuery params
        self._server = _Server({"/bot*": self._route})
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._faults: list[_Fault] = []
        self._blocked: set[int] = set()
        self._unknown: set[int] = set()
        self._messages: dict[tuple[int, int], dict[str, Any]] = {}
        self._next_message: dict[int, int] = {}
        self._updates: list[dict[str, Any]] = []
        self._next_update = 1
        self._callbacks: set[str] = set()

    # --- lifecycle ---------------------------------------------------------------------------------------

    def start(self) -> TelegramDouble:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> TelegramDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def api_url(self) -> str:
        """The root URL, e.g. http://127.0.0.1:PORT (TelegramChannel's `base_url`)."""
        return self._server.url

    @property
    def base_url(self) -> str:
        """PTB's `Bot(base_url=...)`: it appends the token and "/<method>"."""
        return f"{self._server.url}/bot"

    # --- what happened -------------------------------------------------------------------------------------

    def calls_to(self, method: str) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method.lower() == method.lower()]

    def messages(self, chat_id: int | None = None) -> list[Call]:
        """The sendMessage calls Telegram accepted, in arrival order (optionally for one chat)."""
        return [c for c in self.calls_to("sendMessage") if c.ok and (chat_id is None or c.chat_id == chat_id)]

    def message(self, chat_id: int, message_id: int) -> dict[str, Any] | None:
        """A message as the double stores it (its current reply_markup after edits)."""
        with self._lock:
            found = self._messages.get((chat_id, message_id))
            return json.loads(json.dumps(found)) if found else None

    # --- faults -------------------------------------------------------------------------------------------

    def fail_next(
        self,
        n: int,
        kind: str,
        *,
        chat_id: int | None = None,
        method: str | None = None,
        retry_after: int = 3,
        delay: float = 0.0,
    ) -> None:
        """The next `n` calls matching `chat_id` and `method` fail with `kind` (see the module docstring).
        `method=None` matches every method except getUpdates (so polling is unaffected)."""
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; one of {sorted(FAULTS)}")
        with self._lock:
            self._faults.append(_Fault(kind, n, chat_id, method, retry_after, delay))

    def block(self, chat_id: int) -> None:
        """The user blocked the bot: every call for this chat answers 403 from now on."""
        with self._lock:
            self._blocked.add(chat_id)

    def forget(self, chat_id: int) -> None:
        """No such chat: every call for it answers 400 "chat not found"."""
        with self._lock:
            self._unknown.add(chat_id)

    # --- incoming updates -----------------------------------------------------------------------------------

    def enqueue_update(self, update: dict[str, Any]) -> dict[str, Any]:
        """Queue a raw Update (its update_id is assigned here) for getUpdates."""
        with self._arrived:
            update = {**update, "update_id": self._next_update}
            self._next_update += 1
            self._updates.append(update)
            self._arrived.notify_all()
            return update

    def enqueue_message(
        self, chat_id: int, text: str, *, user_id: int | None = None, username: str = "reader"
    ) -> dict[str, Any]:
        """A user's text message (a command when it starts with "/": it gets a bot_command entity)."""
        with self._lock:
            message_id = self._new_message_id(chat_id)
        message: dict[str, Any] = {
            "message_id": message_id,
            "from": self._user(user_id if user_id is not None else chat_id, username),
            "chat": self._chat(chat_id),
            "date": int(time.time()),
            "text": text,
        }
        command = re.match(r"/[A-Za-z0-9_]+(?:@[A-Za-z0-9_]+)?", text)
        if command:
            message["entities"] = [
                {"type": "bot_command", "offset": 0, "length": utf16_len(command.group(0))}
            ]
        return self.enqueue_update({"message": message})

    def enqueue_callback(
        self,
        chat_id: int,
        data: str,
        *,
        message_id: int | None = None,
        user_id: int | None = None,
        username: str = "reader",
    ) -> dict[str, Any]:
        """A tap on an inline button with `data`, on message `message_id` (by default the chat's last
        message the bot sent)."""
        with self._lock:
            if message_id is None:
                sent = [mid for (cid, mid) in self._messages if cid == chat_id]
                message_id = max(sent) if sent else 0
            message = self._messages.get((chat_id, message_id)) or {
                "message_id": message_id,
                "chat": self._chat(chat_id),
                "date": 0,  # inaccessible message
            }
            query_id = f"cbq-{chat_id}-{self._next_update}"
            self._callbacks.add(query_id)
        query = {
            "id": query_id,
            "from": self._user(user_id if user_id is not None else chat_id, username),
            "message": json.loads(json.dumps(message)),
            "chat_instance": f"ci-{chat_id}",
            "data": data,
        }
        return self.enqueue_update({"callback_query": query})

    # --- the API ----------------------------------------------------------------------------------------

    def _route(self, request: Request) -> Reply:
        m = re.fullmatch(r"/bot([^/]+)/([A-Za-z]+)", request.path)
        if m is None:
            return _error(404, "Not Found")
        if m.group(1) != self.token:
            return _error(401, "Unauthorized")
        method = m.group(2)
        try:
            params, files = _params(request)
        except ValueError as e:
            return _error(400, f"Bad Request: {e}")
        call = Call(method=method, params=params, files=files)
        fault = self._take_fault(method, params.get("chat_id"))
        if fault is not None and fault.kind == "drop":
            with self._lock:
                call.status = 0
                self.calls.append(call)
            raise _DropConnection(method)
        if fault is not None and fault.kind != "slow":
            status, answer = _fault_answer(fault)
        else:
            status, answer = self._answer(method, params, files)
        call.status, call.answer = status, answer
        with self._lock:
            self.calls.append(call)
        return Reply(
            status,
            json.dumps(answer).encode(),
            {"Content-Type": "application/json"},
            delay=fault.delay if fault is not None and fault.kind == "slow" else 0.0,
        )

    def _take_fault(self, method: str, chat_id: Any) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.remaining <= 0:
                    continue
                if fault.method is None and method.lower() == "getupdates":
                    continue
                if fault.method is not None and fault.method.lower() != method.lower():
                    continue
                if fault.chat_id is not None and fault.chat_id != chat_id:
                    continue
                fault.remaining -= 1
                return fault
        return None

    def _answer(self, method: str, params: dict[str, Any], files: dict[str, bytes]) -> tuple[int, dict]:
        name = method.lower()
        chat_id = params.get("chat_id")
        if isinstance(chat_id, int):
            with self._lock:
                if chat_id in self._blocked:
                    return 403, {
                        "ok": False,
                        "error_code": 403,
                        "description": "Forbidden: bot was blocked by the user",
                    }
                if chat_id in self._unknown:
                    return 400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}
        handler = {
            "getme": lambda: BOT_USER,
            "sendmessage": lambda: self._send_message(params),
            "sendphoto": lambda: self._send_photo(params, files),
            "editmessagereplymarkup": lambda: self._edit_markup(params),
            "answercallbackquery": lambda: self._answer_callback(params),
            "getupdates": lambda: self._get_updates(params),
            "deletewebhook": lambda: self._delete_webhook(params),
            "setwebhook": lambda: True,
            "getwebhookinfo": lambda: {"url": "", "has_custom_certificate": False, "pending_update_count": 0},
            "setmycommands": lambda: self._set_commands(params),
            "getmycommands": lambda: list(self.commands),
            "deletemycommands": lambda: self._set_commands({"commands": []}),
            "sendchataction": lambda: True,
            "close": lambda: True,
            "logout": lambda: True,
        }.get(name)
        if handler is None:
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        try:
            return 200, {"ok": True, "result": handler()}
        except _BadRequest as e:
            return 400, {"ok": False, "error_code": 400, "description": f"Bad Request: {e}"}

    def _chat_id(self, params: dict[str, Any]) -> int:
        chat_id = params.get("chat_id")
        if chat_id in (None, ""):
            raise _BadRequest("chat_id is empty")
        if not isinstance(chat_id, int):
            raise _BadRequest("chat not found")
        return chat_id

    def _markup(self, params: dict[str, Any]) -> dict[str, Any] | None:
        if "reply_markup" not in params:
            return None
        problem = markup_problem(params["reply_markup"])
        if problem:
            raise _BadRequest(problem)
        return params["reply_markup"]

    def _formatted(self, text: str, params: dict[str, Any], limit: int, what: str) -> tuple[str, list]:
        mode = str(params.get("parse_mode") or "")
        if mode.lower() == "html":
            try:
                visible, entities = parse_html(text)
            except HtmlError as e:
                raise _BadRequest(f"can't parse entities: {e}") from None
        elif mode:
            raise _BadRequest(f"unsupported parse_mode {mode!r} in this double")
        else:
            visible, entities = text, []
        visible = visible.strip()
        if what == "text" and not visible:
            raise _BadRequest("message text is empty")
        if utf16_len(visible) > limit:
            raise _BadRequest("message is too long" if what == "text" else "message caption is too long")
        return visible, entities

    def _store(self, chat_id: int, message: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            message_id = self._new_message_id(chat_id)
            message = {
                "message_id": message_id,
                "from": BOT_USER,
                "chat": self._chat(chat_id),
                "date": int(time.time()),
                **message,
            }
            self._messages[(chat_id, message_id)] = message
            return json.loads(json.dumps(message))

    def _send_message(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._chat_id(params)
        text = params.get("text")
        if not isinstance(text, str) or not text:
            raise _BadRequest("message text is empty")
        visible, entities = self._formatted(text, params, TEXT_LIMIT, "text")
        markup = self._markup(params)
        message: dict[str, Any] = {"text": visible}
        if entities:
            message["entities"] = entities
        if markup:
            message["reply_markup"] = markup
        return self._store(chat_id, message)

    def _send_photo(self, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        chat_id = self._chat_id(params)
        photo = files.get("photo")
        if photo is None:
            raise _BadRequest("there is no photo in the request")
        if not photo.startswith(b"\x89PNG\r\n\x1a\n") and not photo.startswith(b"\xff\xd8"):
            raise _BadRequest("IMAGE_PROCESS_FAILED")
        message: dict[str, Any] = {
            "photo": [
                {
                    "file_id": f"photo-{len(photo)}",
                    "file_unique_id": f"u{len(photo)}",
                    "width": 320,
                    "height": 80,
                    "file_size": len(photo),
                }
            ]
        }
        caption = params.get("caption")
        if caption:
            visible, entities = self._formatted(str(caption), params, CAPTION_LIMIT, "caption")
            message["caption"] = visible
            if entities:
                message["caption_entities"] = entities
        markup = self._markup(params)
        if markup:
            message["reply_markup"] = markup
        return self._store(chat_id, message)

    def _edit_markup(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._chat_id(params)
        markup = self._markup(params)
        with self._lock:
            message = self._messages.get((chat_id, params.get("message_id")))
            if message is None:
                raise _BadRequest("message to edit not found")
            if message.get("reply_markup") == markup:
                raise _BadRequest(
                    "message is not modified: specified new message content and reply markup are "
                    "exactly the same as a current content and reply markup of the message"
                )
            if markup:
                message["reply_markup"] = markup
            else:
                message.pop("reply_markup", None)
            return json.loads(json.dumps(message))

    def _answer_callback(self, params: dict[str, Any]) -> bool:
        query_id = str(params.get("callback_query_id", ""))
        with self._lock:
            if query_id not in self._callbacks:
                raise _BadRequest("query is too old and response timeout expired or query ID is invalid")
            self._callbacks.discard(query_id)
            self.answered.append(dict(params))
        return True

    def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = params.get("offset") or 0
        limit = params.get("limit") or 100
        wait = min(float(params.get("timeout") or 0), self.poll_wait)
        with self._arrived:
            if isinstance(offset, int) and offset > 0:  # confirms every update before it
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
            if not self._updates and wait > 0:
                self._arrived.wait(wait)
            return json.loads(json.dumps(self._updates[: int(limit)]))

    def _delete_webhook(self, params: dict[str, Any]) -> bool:
        if str(params.get("drop_pending_updates", "")).lower() == "true":
            with self._lock:
                self._updates = []
        return True

    def _set_commands(self, params: dict[str, Any]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list) or not all(
            isinstance(c, dict)
            and re.fullmatch(r"[a-z0-9_]{1,32}", str(c.get("command", "")))
            and 1 <= len(str(c.get("description", ""))) <= 256
            for c in commands
        ):
            raise _BadRequest("BOT_COMMAND_INVALID")
        with self._lock:
            self.commands = commands
        return True

    # --- shapes -----------------------------------------------------------------------------------------

    def _new_message_id(self, chat_id: int) -> int:  # called with the lock held
        self._next_message[chat_id] = self._next_message.get(chat_id, 0) + 1
        return self._next_message[chat_id]

    @staticmethod
    def _chat(chat_id: int) -> dict[str, Any]:
        if chat_id < 0:
            return {"id": chat_id, "type": "supergroup", "title": "feedsvc test group"}
        return {"id": chat_id, "type": "private", "first_name": "Reader"}

    @staticmethod
    def _user(user_id: int, username: str) -> dict[str, Any]:
        return {
            "id": abs(user_id),
            "is_bot": False,
            "first_name": "Reader",
            "username": username,
            "language_code": "en",
        }


class _BadRequest(Exception):
    pass


def _error(status: int, description: str) -> Reply:
    body = {"ok": False, "error_code": status, "description": description}
    return Reply(status, json.dumps(body).encode(), {"Content-Type": "application/json"})


def _fault_answer(fault: _Fault) -> tuple[int, dict[str, Any]]:
    if fault.kind == "flood":
        return 429, {
            "ok": False,
            "error_code": 429,
            "description": f"Too Many Requests: retry after {fault.retry_after}",
            "parameters": {"retry_after": fault.retry_after},
        }
    if fault.kind == "blocked":
        return 403, {"ok": False, "error_code": 403, "description": "Forbidden: bot was blocked by the user"}
    return 502, {"ok": False, "error_code": 502, "description": "Bad Gateway"}


def _decode(name: str, value: str) -> Any:
    if name in JSON_PARAMS:
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value  # left as text: markup_problem refuses it like Telegram
    if name in INT_PARAMS and re.fullmatch(r"-?\d+", value):
        return int(value)
    return value


def _params(request: Request) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The call's parameters from the query string and the body (form, multipart or JSON)."""
    raw: dict[str, str] = dict(request.query)
    files: dict[str, bytes] = {}
    ctype = request.headers.get("content-type", "")
    if request.body and ctype.startswith("application/x-www-form-urlencoded"):
        raw.update(parse_qsl(request.body.decode("utf-8"), keep_blank_values=True))
    elif request.body and ctype.startswith("multipart/form-data"):
        message = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + ctype.encode("latin-1") + b"\r\n\r\n" + request.body
        )
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True) or b""
            if part.get_filename() is not None:
                files[str(name)] = payload
            else:
                raw[str(name)] = payload.decode("utf-8")
    elif request.body and ctype.startswith("application/json"):
        try:
            body = json.loads(request.body)
        except json.JSONDecodeError as e:
            raise ValueError(f"can't parse JSON body: {e}") from None
        return {k: v for k, v in body.items()}, files
    return {k: _decode(k, v) for k, v in raw.items()}, files
