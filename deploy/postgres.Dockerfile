# PostgreSQL from Debian's package, for where the official image cannot be pulled (no registry reachable):
# `podman build --network=host --build-arg BASE=localhost/debian:bookworm-slim -f deploy/postgres.Dockerfile
# -t localhost/feedsvc-postgres deploy`, then FEEDSVC_POSTGRES_IMAGE=localhost/feedsvc-postgres for compose.
# It keeps the official image's contract: POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB and its data in
# /var/lib/postgresql/data.
ARG BASE=docker.io/library/debian:bookworm-slim
FROM ${BASE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql \
 && rm -rf /var/lib/apt/lists/* \
 && (pg_dropcluster --stop "$(ls /etc/postgresql)" main || true) \
 && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
 && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql \
 && chmod 700 /var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint
ENV PGDATA=/var/lib/postgresql/data
USER postgres
VOLUME ["/var/lib/postgresql/data"]
EXPOSE 5432
HEALTHCHECK --interval=5s --timeout=3s --retries=10 CMD pg_isready -h 127.0.0.1 -q
STOPSIGNAL SIGINT
ENTRYPOINT ["postgres-entrypoint"]
