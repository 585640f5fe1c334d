"""`python -m runtime.worker actors housekeeping -p N -t 16`: Dramatiq's worker with the service's logs.

Takes Dramatiq's command-line arguments. Dramatiq's CLI configures logging itself, in its text format,
in the parent process (which never imports the actors) and in each worker process: this entry point
configures the service's format (`runtime.logging`, process `worker`) first and passes
`--skip-logging`, so the parent's lines (start, stop, a worker process that died) are in it too; the
worker processes reconfigure on boot (`actors.broker.ProcessSetup`).
"""

from __future__ import annotations

import sys

from runtime.logging import configure_process


def main() -> None:
    configure_process("worker")
    from dramatiq.cli import main as dramatiq_main
    from dramatiq.cli import make_argument_parser

    args = make_argument_parser().parse_args([*sys.argv[1:], "--skip-logging"])
    sys.exit(dramatiq_main(args))


if __name__ == "__main__":
    main()
