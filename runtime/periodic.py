"""`python -m runtime.periodic actors housekeeping`: periodiq's scheduler with the service's logs.

Takes periodiq's command-line arguments. Periodiq's entry point configures logging in its text format
unless logging is configured already: this one configures the service's format (`runtime.logging`,
process `housekeeping`) first.
"""

from __future__ import annotations

import sys

from runtime.logging import configure_process


def main() -> None:
    configure_process("housekeeping")
    from periodiq import entrypoint

    sys.argv[0] = "periodiq"
    entrypoint()  # exits


if __name__ == "__main__":
    main()
