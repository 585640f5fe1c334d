"""`python -m api`: serve the API with uvicorn on API_HOST:API_PORT."""

import uvicorn

from core.settings import get_settings
from runtime import tracing
from runtime.http import create_app
from runtime.logging import configure_process


def main() -> None:
    settings = get_settings()
    configure_process("api")
    tracing.setup(settings, "api")
    uvicorn.run(create_app(settings), host=settings.API_HOST, port=settings.API_PORT, log_config=None, access_log=False)


if __name__ == "__main__":
    main()
