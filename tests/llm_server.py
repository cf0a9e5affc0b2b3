"""A real llama.cpp OpenAI-compatible server (llama-cpp-python's `llama_cpp.server`) with the packaged
SmolLM2-135M-Instruct on loopback, for the tests marked llm and bench/bench_llm.py.

The interpreter that has llama_cpp is `FEEDSVC_TEST_LLM_PYTHON` (default: this one, where `make llm`
installs it). `find_tier()` says in one line why the tier cannot run (llama_cpp or the model absent);
`LlamaServer` starts the server on a free port, waits until it answers, and can be killed (SIGKILL).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).parent.parent
LLM_PYTHON = os.environ.get("FEEDSVC_TEST_LLM_PYTHON", sys.executable)
ALIAS = "smollm2-135m"


@dataclass(frozen=True)
class Tier:
    python: str
    model: str | None
    reason: str  # empty when the tier can run


def find_tier(python: str = LLM_PYTHON) -> Tier:
    """The interpreter and model of the tier, or the one-line reason it is absent."""
    if not Path(python).exists():
        return Tier(python, None, f"llm tier: {python} does not exist (FEEDSVC_TEST_LLM_PYTHON)")
    probe = subprocess.run([python, "-c", "import llama_cpp.server.app"], capture_output=True, timeout=120)
    if probe.returncode != 0:
        return Tier(python, None, "llm tier: llama-cpp-python[server] is not installed: run `make llm`")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    found = subprocess.run(
        [python, "-m", "feedsvc.cards.local_model"], capture_output=True, text=True, env=env, timeout=60
    )
    if found.returncode != 0:
        return Tier(python, None, "llm tier: " + (found.stderr.strip().splitlines() or ["no model"])[-1])
    return Tier(python, found.stdout.strip(), "")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """`python -m llama_cpp.server` on 127.0.0.1 with the packaged model; its output goes to `log`."""

    def __init__(self, tier: Tier, log: Path, *, threads: int = 1, seed: int = 42) -> None:
        """One thread by default: llama.cpp's threads spin-wait for each other, and on two cores shared
        with other work two threads ran 34 times slower than one (0.4 against 13 tokens/s)."""
        assert tier.model, tier.reason
        self.port = free_port()
        self.log = log
        self.args = [
            tier.python, "-m", "llama_cpp.server", "--model", tier.model, "--model_alias", ALIAS,
            "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", "4096",
            "--n_threads", str(threads), "--n_threads_batch", str(threads), "--seed", str(seed),
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self, wait: bool = True) -> LlamaServer:
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                self.args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 180.0) -> None:
        assert self.proc is not None
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                tail = self.log.read_text(errors="replace")[-600:]
                raise RuntimeError(f"llama_cpp.server exited ({self.proc.returncode}): {tail}")
            try:
                if httpx.get(f"{self.base_url}/models", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"llama_cpp.server did not answer within {timeout:g}s")

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> LlamaServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
