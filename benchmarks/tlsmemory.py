"""Resident memory of one client TLS connection, per event loop and read-buffer strategy.

Each variant runs in a fresh process (``python -m benchmarks.tlsmemory LOOP STRATEGY``): it
opens 300 TLS connections through ``client.dial`` to a TLS server in another process, reads
3000 bytes on each (about an APNs answer), and reports the growth of its own RSS per
connection. Strategies: "shared" (what ships: one read buffer per thread under asyncio) and
"own" (a fresh 16 KiB buffer per connection, as before). uvloop keeps its own buffer either way.
"""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from apns_exporter.client import dial as dialer
from apns_exporter.client.tls import client_context
from apns_exporter.mock.pki import generate_ca
from benchmarks.common import Mock, Workspace, log

NAME = "tls_memory"
CONNECTIONS = 300
ANSWER = 3000
VARIANTS = (("asyncio", "own"), ("asyncio", "shared"), ("uvloop", "shared"))
SERVER = """
import asyncio, ssl, sys
async def main():
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(sys.argv[1], sys.argv[2])
    async def handle(r, w):
        w.write(b"x" * int(sys.argv[3]))
        try:
            await r.read()
        except OSError:
            pass
        w.close()
    srv = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
    print(srv.sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(300)
asyncio.run(main())
"""


def _rss_kib() -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS"))


def _own_buffer(writer: asyncio.StreamWriter) -> bool:
    """The previous strategy: a fresh zero-filled 16 KiB read buffer for each connection."""
    protocol: Any = getattr(writer.transport, "_ssl_protocol", None)
    if not hasattr(protocol, "_ssl_buffer"):
        return False
    protocol.max_size = dialer.TLS_READ_BUFFER_BYTES
    protocol._ssl_buffer = bytearray(dialer.TLS_READ_BUFFER_BYTES)
    protocol._ssl_buffer_view = memoryview(protocol._ssl_buffer)
    return True


async def _connections(port: int, ca_file: str) -> float:
    context = client_context(ca_file, system_store=False)

    async def open_many(n: int) -> list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
        opened = []
        for _ in range(n):
            reader, writer = await dialer.dial(
                "127.0.0.1", port, ssl_context=context, require_h2=False
            )
            await reader.readexactly(ANSWER)
            opened.append((reader, writer))
        return opened

    warm = await open_many(20)  # first-use allocations are not per connection
    gc.collect()
    before = _rss_kib()
    conns = await open_many(CONNECTIONS)
    gc.collect()
    per_connection = (_rss_kib() - before) / CONNECTIONS
    for _, writer in warm + conns:
        writer.transport.abort()
    return per_connection


def _variant(event_loop: str, strategy: str) -> float:
    if strategy == "own":
        dialer.share_read_buffer = _own_buffer  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as tmp:
        ca = generate_ca("tls memory benchmark CA")
        cert, key = ca.issue_server().write(Path(tmp), "server")
        (Path(tmp) / "ca.pem").write_bytes(ca.cert_pem)
        server = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(cert), str(key), str(ANSWER)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert server.stdout is not None
            port = int(server.stdout.readline())
            factory = None
            if event_loop == "uvloop":
                import uvloop

                factory = uvloop.new_event_loop
            with asyncio.Runner(loop_factory=factory) as runner:
                return runner.run(_connections(port, str(Path(tmp) / "ca.pem")))
        finally:
            server.kill()
            server.wait()


def run(ws: Workspace, mock: Mock) -> dict[str, Any]:
    """Each variant in its own process, so one's heap does not hide another's."""
    rows = []
    for event_loop, strategy in VARIANTS:
        log(f"tls_memory: {event_loop} {strategy}")
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.tlsmemory", event_loop, strategy],
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        rows.append(json.loads(done.stdout))
    return {"connections": CONNECTIONS, "answer_bytes": ANSWER, "rows": rows}


if __name__ == "__main__":
    loop_name, strategy_name = sys.argv[1], sys.argv[2]
    kib = _variant(loop_name, strategy_name)
    print(json.dumps({"event_loop": loop_name, "read_buffer": strategy_name, "kib": kib}))
