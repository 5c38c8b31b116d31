# runner's image: the release binary with the Swift runtime linked in, on a small Debian.
#
#   docker build -t runner .
#   docker run -e DATABASE_URL=postgres://... runner                  # runner schedule --http 0.0.0.0:8080
#   docker run -e DATABASE_URL=postgres://... runner once stuck-tasks  # one slot, for platform cron
#   docker build --target embedded -t runner-demo . && docker run runner-demo demo
#
# The base images are build arguments, so scripts/check-image builds this same file with
# local stand-ins where no registry can be reached.
ARG SWIFT_IMAGE=swift:6.3-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${SWIFT_IMAGE} AS build
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libpq-dev libcurl4-openssl-dev pkg-config \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The manifest names every target, so their folders come along; .dockerignore keeps .build out.
COPY Package.swift ./
COPY Sources Sources
COPY Tests Tests
COPY Benchmarks Benchmarks
RUN swift build -c release --product runner --static-swift-stdlib \
    && install -m 0755 "$(swift build -c release --show-bin-path)/runner" /usr/local/bin/runner \
    && strip /usr/local/bin/runner

# What the binary loads and nothing else: libpq and libcurl (with what they pull in), the CA
# certificates for TLS to Postgres and the providers, and the zone database for job time zones.
FROM ${RUNTIME_IMAGE} AS runtime
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libpq5 libcurl4 ca-certificates tzdata \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /app --create-home --shell /usr/sbin/nologin runner
COPY --from=build /usr/local/bin/runner /usr/local/bin/runner
COPY jobs.yaml /app/jobs.yaml
WORKDIR /app
USER 10001:10001
ENV RUNNER_CONFIG=/app/jobs.yaml
EXPOSE 8080
# `docker stop` sends SIGTERM: runner stops claiming, waits --grace for running jobs, exits 0.
STOPSIGNAL SIGTERM
# /health answers 200 while the database answers and the loop ticks (bash's /dev/tcp: no curl
# in the image). Only for the default command; a `runner once` container exits instead.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/8080 && printf 'GET /health HTTP/1.0\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
ENTRYPOINT ["runner"]
CMD ["schedule", "--http", "0.0.0.0:8080"]

# The embedded default (runner starts its own PostgreSQL when DATABASE_URL is unset): for
# `runner demo` and trying runner out, never for production.
FROM runtime AS embedded
USER root
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql \
    && rm -rf /var/lib/apt/lists/*
USER 10001:10001
CMD ["demo"]
