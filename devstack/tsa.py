"""A real RFC 3161 time-stamping authority on loopback, for tests and ``make run``.

At start it generates a throw-away CA and a TSA certificate signed by it (extended
key usage timeStamping, critical, as RFC 3161 requires) and an ``openssl ts`` config;
each POST of an ``application/timestamp-query`` is answered by running
``openssl ts -reply`` on it. So the tokens the app stores, and the checks made on
them (``optinproof evidence verify``, ``openssl ts -verify``), are those of a real TSA;
only the trust anchor is ours (``ca_pem``), where production uses a qualified TSA's.

``fail`` makes it answer 503 (a TSA that is down, for the alarm tests).
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

_CONFIG = """\
[ tsa ]
default_tsa = local_tsa

[ local_tsa ]
dir = {dir}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.pem
certs = $dir/tsa.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.3.6.1.4.1.55555.1.1
other_policies = 1.3.6.1.4.1.55555.1.2
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""

_TSA_EXTENSIONS = """\
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, nonRepudiation
extendedKeyUsage = critical, timeStamping
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def _openssl(*args: str, data: bytes | None = None) -> bytes:
    result = subprocess.run(["openssl", *args], input=data, capture_output=True, check=False)
    if result.returncode:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.decode(errors='replace')}")
    return result.stdout


def make_authority(folder: Path) -> None:
    """CA key and certificate, TSA key and certificate (signed by the CA), config."""
    folder.mkdir(parents=True, exist_ok=True)
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
        "-subj", "/CN=OptinProof test TSA root (throw-away)/O=OptinProof devstack",
        "-keyout", str(folder / "ca.key"), "-out", str(folder / "ca.pem"),
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    _openssl(
        "req", "-new", "-newkey", "rsa:2048", "-nodes",
        "-subj", "/CN=OptinProof test TSA (throw-away)/O=OptinProof devstack",
        "-keyout", str(folder / "tsa.key"), "-out", str(folder / "tsa.csr"),
    )  # fmt: skip
    (folder / "tsa.ext").write_text(_TSA_EXTENSIONS)
    _openssl(
        "x509", "-req", "-in", str(folder / "tsa.csr"), "-days", "30",
        "-CA", str(folder / "ca.pem"), "-CAkey", str(folder / "ca.key"), "-CAcreateserial",
        "-extfile", str(folder / "tsa.ext"), "-out", str(folder / "tsa.pem"),
    )  # fmt: skip
    (folder / "serial").write_text("01\n")
    (folder / "tsa.cnf").write_text(_CONFIG.format(dir=folder))


class LocalTSA:
    """``start()`` → ``url``; ``ca_pem`` is the file a verifier trusts; ``calls`` counts."""

    def __init__(self, folder: Path | None = None, port: int = 0, host: str = "127.0.0.1"):
        self._temp = None if folder else tempfile.TemporaryDirectory(prefix="optinproof-tsa-")
        self.folder = Path(folder or self._temp.name)  # type: ignore[union-attr]
        self.host, self.port = host, port
        self.fail = False
        self.calls = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/tsa"

    @property
    def ca_pem(self) -> Path:
        return self.folder / "ca.pem"

    def reply(self, query: bytes) -> bytes:
        """``openssl ts -reply`` on one DER query; the DER response (serial-safe)."""
        with self._lock, tempfile.TemporaryDirectory(dir=self.folder) as work:
            query_file, answer_file = Path(work) / "q.tsq", Path(work) / "r.tsr"
            query_file.write_bytes(query)
            _openssl(
                "ts", "-reply", "-config", str(self.folder / "tsa.cnf"),
                "-queryfile", str(query_file), "-out", str(answer_file),
            )  # fmt: skip
            return answer_file.read_bytes()

    def start(self) -> LocalTSA:
        if not (self.folder / "tsa.cnf").exists():
            make_authority(self.folder)
        tsa = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                size = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(size)
                tsa.calls += 1
                if tsa.fail:
                    return self._answer(503, b"TSA unavailable (test)", "text/plain")
                if self.headers.get("Content-Type") != "application/timestamp-query":
                    return self._answer(415, b"expected application/timestamp-query", "text/plain")
                try:
                    answer = tsa.reply(body)
                except RuntimeError as exc:
                    return self._answer(400, str(exc).encode(), "text/plain")
                return self._answer(200, answer, "application/timestamp-reply")

            def _answer(self, status: int, body: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._temp:
            self._temp.cleanup()


if __name__ == "__main__":
    import sys
    import time

    server = LocalTSA(port=int(sys.argv[1]) if len(sys.argv) > 1 else 8004).start()
    print(f"TSA at {server.url}; trust {server.ca_pem}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()
