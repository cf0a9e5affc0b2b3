"""A real SMTP server on loopback for tests: aiosmtpd's `Controller` on 127.0.0.1, on a free port.

It keeps every message that arrives (envelope and raw bytes) and counts connections, and misbehaves on
request through attributes a test may change at any time: `refuse` answers chosen recipients' RCPT with
a reply of the test's choice (550, 451, 421...), `data_replies` answers the next messages' DATA with
temporary or permanent errors, `drop_after` closes each connection once it has delivered that many
messages (what a server's idle time-out does), `lose_reply_to` keeps a message but cuts the connection
before answering it. `running_smtp(auth=(user, password))` requires AUTH (allowed without TLS: loopback
only); `running_smtp(tls="starttls" | "implicit")` serves a self-signed certificate made at test time
with `cryptography` (skipped when it is missing) and hands out `client_context`, which trusts it.

Usage: `with running_smtp() as server: ...`, or the `smtp_server` fixture: in a test file,
`from smtp_server import smtp_server_fixture  # noqa: F401` then take `smtp_server: SmtpServer` as an
argument (tests/ is on sys.path, like fakes.py and corpus.py; the alias keeps ruff's F811 quiet).
"""

from __future__ import annotations

import asyncio
import ipaddress
import shutil
import ssl
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


@dataclass(frozen=True)
class Received:
    """One message as the server accepted it; `connection` numbers the connection that carried it (1..)."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    connection: int

    def message(self) -> EmailMessage:
        """The message parsed as a mail client reads it from a mailbox: CRLF stored as LF."""
        msg = message_from_bytes(self.raw.replace(b"\r\n", b"\n"), policy=policy.default)
        assert isinstance(msg, EmailMessage)
        return msg


class SmtpServer:
    """The handler and the record of one running server; change the behaviour attributes freely."""

    def __init__(self, auth: tuple[str, str] | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.client_context: ssl.SSLContext | None = None  # trusts the server's certificate (TLS modes)
        self.received: list[Received] = []
        self.refuse: dict[str, str] = {}  # recipient (lower-case) -> the whole reply to its RCPT
        self.data_replies: list[str] = []  # replies to the next messages' final dot, in turn, instead of 250
        self.drop_after: int | None = None  # close a connection once it has delivered this many messages
        self.lose_reply_to: set[int] = set()  # numbers (1.., all connections) of messages kept unanswered
        self.logins: list[str] = []  # user names that authenticated
        self.data_delay: float = 0.0  # seconds each message's DATA takes (a slow server, to interrupt a run)
        self._auth = auth
        self._lock = threading.Lock()
        self._connections: list[SMTP] = []
        self._delivered: dict[int, int] = {}

    @property
    def connections(self) -> int:
        """Connections opened by clients since the server started."""
        with self._lock:
            return len(self._connections)

    def connected(self, smtp: SMTP) -> None:
        with self._lock:
            self._connections.append(smtp)

    def forget_connections(self) -> None:
        with self._lock:
            self._connections.clear()

    def _number(self, smtp: SMTP) -> int:
        return next(i for i, s in enumerate(self._connections, 1) if s is smtp)

    # -- aiosmtpd hooks --------------------------------------------------------------------------------

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        reply = self.refuse.get(address.lower())
        if reply:
            if reply.startswith("421"):
                asyncio.get_running_loop().call_soon(_close, server)
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        with self._lock:
            if self.data_replies:
                return self.data_replies.pop(0)
            connection = self._number(server)
            raw = envelope.original_content or b""
            self.received.append(
                Received(str(envelope.mail_from), tuple(envelope.rcpt_tos), bytes(raw), connection)
            )
            self._delivered[connection] = self._delivered.get(connection, 0) + 1
            if len(self.received) in self.lose_reply_to:
                assert server.transport is not None
                server.transport.abort()  # at once: the reply written next goes nowhere
                return "250 OK"
            if self.drop_after is not None and self._delivered[connection] >= self.drop_after:
                # After this hook's reply has been written: the client sees a closed idle connection.
                asyncio.get_running_loop().call_soon(_close, server)
        return "250 OK"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert self._auth is not None
        user, password = self._auth
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        if ok:
            self.logins.append(user)
        return AuthResult(success=ok, handled=False)


def _close(smtp: SMTP) -> None:
    if smtp.transport is not None:
        smtp.transport.close()


class _Controller(Controller):
    """aiosmtpd's threaded controller, on a port the OS picks, counting connections."""

    def __init__(self, record: SmtpServer, **kwargs: Any) -> None:
        super().__init__(record, hostname="127.0.0.1", port=0, server_hostname="localhost", **kwargs)
        self.record = record

    def factory(self) -> SMTP:  # one SMTP protocol object per client connection
        smtp = super().factory()
        self.record.connected(smtp)
        return smtp

    def _trigger_server(self) -> None:
        # Port 0 asks the OS for a free port; learn it before the controller's own test connection.
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


def self_signed_certificate(directory: Path) -> tuple[Path, Path, str]:
    """A certificate for localhost and 127.0.0.1 with its key, as files, and the certificate's PEM."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        pytest.skip("cryptography is not installed: no self-signed certificate for the TLS test")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_text(pem, encoding="ascii")
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path, pem


@contextmanager
def running_smtp(
    *, auth: tuple[str, str] | None = None, tls: Literal["starttls", "implicit"] | None = None
) -> Iterator[SmtpServer]:
    """A started server (stopped on exit); see the module docstring for what it can be told to do."""
    record = SmtpServer(auth)
    kwargs: dict[str, Any] = {}
    if auth is not None:
        # AUTH without TLS is allowed (loopback); with STARTTLS it is offered only after it, like real servers
        kwargs.update(
            authenticator=record.authenticate, auth_required=True, auth_require_tls=tls == "starttls"
        )
    workdir = Path(tempfile.mkdtemp(prefix="feedsvc-smtp-"))
    try:
        if tls is not None:
            cert_path, key_path, pem = self_signed_certificate(workdir)
            server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            server_ctx.load_cert_chain(cert_path, key_path)
            record.client_context = ssl.create_default_context(cadata=pem)
            if tls == "starttls":
                kwargs.update(tls_context=server_ctx, require_starttls=True)
            else:
                kwargs.update(ssl_context=server_ctx)
        controller = _Controller(record, **kwargs)
        controller.start()
        record.port = controller.port
        record.forget_connections()  # the controller's own start-up probe is not a client
        try:
            yield record
        finally:
            controller.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(name="smtp_server")
def smtp_server_fixture() -> Iterator[SmtpServer]:
    """The `smtp_server` fixture: a plain server (no AUTH, no TLS) for one test."""
    with running_smtp() as server:
        yield server
