"""A private PostgreSQL for the chaos runner and the database-fault tests (never the shared one on 5432).

Debian's binaries (/usr/lib/postgresql/15/bin). initdb refuses to run as root, so initdb, pg_ctl and
the server run as user `postgres` (`runuser -u postgres --`) in a temp directory chowned to it;
trust auth, 127.0.0.1 on a free port. `stop()` is a fast shutdown (`pg_ctl stop -m fast`); the data
directory survives, so `start()` brings the same database back on the same port.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

from tests.support.harness import free_port

PG_BIN = Path(os.environ.get("CHAOS_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER = os.environ.get("CHAOS_PG_OS_USER", "postgres")


def as_postgres(args: list[str], **kw) -> subprocess.CompletedProcess:
    prefix = ["runuser", "-u", PG_USER, "--"] if os.geteuid() == 0 else []
    return subprocess.run(prefix + args, check=True, capture_output=True, text=True, **kw)


class PrivatePostgres:
    kind = "postgres"

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="chaos-pg-"))
        self.data = self.dir / "data"
        self.sockets = self.dir / "sock"
        self.log = self.dir / "postgres.log"
        self.sockets.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.dir, PG_USER, PG_USER)
            shutil.chown(self.sockets, PG_USER, PG_USER)
        self.starts = 0
        as_postgres(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ]
        )
        with open(self.data / "postgresql.auto.conf", "a") as conf:
            # A throw-away database on a shared 2-core machine: durability is not what is under test
            # (a fast shutdown checkpoints anyway), so spare the disk.
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.sockets}'\nmax_connections = 300\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "shared_buffers = '256MB'\nlog_min_messages = warning\n"
            )

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{database}"

    def ready(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists() and self.ready()

    def start(self, timeout: float = 60) -> None:
        self.starts += 1
        as_postgres(
            [str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", str(int(timeout)), "start"]
        )

    def stop(self, mode: str = "fast") -> None:
        """`fast`: roll back open transactions, disconnect clients, checkpoint, exit."""
        if (self.data / "postmaster.pid").exists():
            as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"])

    def cleanup(self) -> None:
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PrivatePostgres:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.cleanup()
