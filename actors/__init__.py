"""Dramatiq actors. `dramatiq actors` imports this package: it installs the broker, then the actors."""

from actors.broker import install_broker
from core.settings import get_settings

broker = install_broker(get_settings())

from actors.fire import fire_batch, fire_overdue, retry_execution  # noqa: E402  (actors need the broker first)

__all__ = ["broker", "fire_batch", "fire_overdue", "retry_execution"]
