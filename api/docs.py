"""The REST door's documentation: the OpenAPI description's security schemes and `/docs`.

Every /api/v1 operation declares the two ways of sending an API key (`Authorization: Bearer <key>` or
`X-API-Key: <key>`), so Swagger UI shows an "Authorize" button. The declaration is documentation only:
the routes authenticate through `api.deps` and `services.principals` as before, and with
`AUTH_ENABLED=false` the keys are not needed. `/docs` is Swagger UI from `web/vendor/swagger-ui/`
(served at /vendor/swagger-ui/ by `api.dashboard`), so it works without the internet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse

DOCS_PAGE = Path(__file__).resolve().parent.parent / "web" / "docs.html"
SECURED_PREFIX = "/api/v1/"
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
SECURITY_SCHEMES: dict[str, dict[str, str]] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key as `Authorization: Bearer <key>` (needed when AUTH_ENABLED=true).",
    },
    "apiKey": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "An API key as `X-API-Key: <key>` (needed when AUTH_ENABLED=true).",
    },
}
# Alternatives: either scheme authenticates an operation.
SECURITY = [{name: []} for name in SECURITY_SCHEMES]


def add_security_schemes(spec: dict[str, Any]) -> dict[str, Any]:
    """Declare the schemes in `components` and list them on every operation under /api/v1/."""
    spec.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    for path, item in spec.get("paths", {}).items():
        if path.startswith(SECURED_PREFIX):
            for method, operation in item.items():
                if method in HTTP_METHODS:
                    operation["security"] = SECURITY
    return spec


def install_api_docs(app: FastAPI) -> None:
    """Wrap `app.openapi` with the security schemes and serve `/docs` (the app is built with docs_url=None)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = add_security_schemes(generate())
        return app.openapi_schema

    app.openapi = openapi

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> FileResponse:
        return FileResponse(DOCS_PAGE, media_type="text/html", headers={"Cache-Control": "no-cache"})
