# The timeline service: one image for `timeline api`, `timeline worker` and the rest of the CLI.
# Build stage: turn the project (pyproject.toml) into a wheel, so the runtime image
# holds an ordinary installed package and no source tree or build tools.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# README* may be absent: pyproject names it, setuptools only warns.
COPY pyproject.toml README* ./
COPY events ./events
COPY projections ./projections
COPY services ./services
RUN pip wheel --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TIMELINE_LOG_FORMAT=json \
    TIMELINE_DATA_DIR=/data
# jemalloc for the embedded server (the image run without TIMELINE_REDIS_URL):
# services/redis/embedded.py preloads it when installed; at 1M events it takes a third
# off the server's CPU per projected event (docs/performance.md).
RUN apt-get update \
    && apt-get install -y --no-install-recommends libjemalloc2 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /wheels /tmp/wheels
RUN pip install /tmp/wheels/*.whl && rm -rf /tmp/wheels
# Non-root. /data (the working directory) holds an embedded server's AOF, used only
# without TIMELINE_REDIS_URL, and `publish -`'s stdin.rejects.jsonl.
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/timeline timeline \
    && mkdir /data && chown timeline:timeline /data
USER timeline
WORKDIR /data
EXPOSE 8000
ENTRYPOINT ["timeline"]
CMD ["api", "--host", "0.0.0.0"]
