"""`python -m runtime.apikeys`: create, list and revoke API keys (the secret is shown once).

python -m runtime.apikeys create --principal billing-service --role writer [--description "..."]
python -m runtime.apikeys list
python -m runtime.apikeys revoke <id or prefix>
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime, timezone

from core.errors import DomainError
from core.settings import get_settings
from models.db import make_engine, make_session_factory
from services.auth import ApiKeyService
from services.context import Role


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m runtime.apikeys", description=__doc__.splitlines()[0])
    commands = root.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create", help="create a key and print its secret once")
    create.add_argument("--principal", required=True)
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--description")
    commands.add_parser("list", help="list keys (never their secrets)")
    revoke = commands.add_parser("revoke", help="revoke a key by id or prefix")
    revoke.add_argument("key")
    return root


async def run(args: argparse.Namespace) -> int:
    settings = get_settings()
    engine = make_engine(settings.DATABASE_URL, pool_size=1)
    keys = ApiKeyService(make_session_factory(engine), 0)
    now = datetime.now(timezone.utc)
    try:
        if args.command == "create":
            key, secret = await keys.create(args.principal, args.role, now, args.description)
            print(json.dumps({**key.model_dump(mode="json"), "secret": secret}, indent=2))
            print("Store the secret now: it is not kept and cannot be shown again.", file=sys.stderr)
        elif args.command == "list":
            for key in await keys.list():
                print(json.dumps(key.model_dump(mode="json")))
        else:
            print(json.dumps((await keys.revoke(args.key, now)).model_dump(mode="json")))
        return 0
    except DomainError as error:
        print(f"error: {error.message}", file=sys.stderr)
        return 2
    finally:
        await engine.dispose()


def main() -> None:
    raise SystemExit(asyncio.run(run(parser().parse_args())))


if __name__ == "__main__":
    main()
