# The scheduler service image: one image for every process (api, ticker, worker, housekeeping, migrate);
# docker-compose.yml picks the command. The service runs from the repository root (PYTHONPATH=/app):
# `pip install .` installs only the dependencies listed in pyproject.toml, not the packages.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    API_HOST=0.0.0.0 \
    API_PORT=8008

WORKDIR /app

# Dependencies first (a layer that changes only with pyproject.toml).
COPY pyproject.toml README.md ./
RUN pip install . \
    # dramatiq-dashboard 0.4.0 pins dramatiq<2 and redis<5 but works with ours (see the Makefile).
    && pip install --no-deps dramatiq-dashboard==0.4.0

COPY alembic.ini schema.graphql ./
COPY core/ core/
COPY models/ models/
COPY services/ services/
COPY api/ api/
COPY gql/ gql/
COPY ticker/ ticker/
COPY actors/ actors/
COPY housekeeping/ housekeeping/
COPY runtime/ runtime/
COPY migrations/ migrations/
COPY web/ web/

RUN useradd --system --uid 10001 --no-create-home scheduler
USER scheduler

EXPOSE 8008
CMD ["python", "-m", "api"]
