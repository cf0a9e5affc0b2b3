# The optional front server (`docker compose --profile front up`): Debian's nginx, configured by
# deploy/nginx.conf (mounted), serving the static export from /srv/site and passing the rest to the app,
# reloaded when the app's address changes (deploy/front-entrypoint.sh).
ARG BASE=docker.io/library/debian:bookworm-slim
FROM ${BASE}
RUN apt-get update \
 && apt-get install -y --no-install-recommends nginx \
 && rm -rf /var/lib/apt/lists/* \
 && ln -sf /dev/stdout /var/log/nginx/access.log && ln -sf /dev/stderr /var/log/nginx/error.log
COPY front-entrypoint.sh /usr/local/bin/front-entrypoint
EXPOSE 80
HEALTHCHECK --interval=30s --timeout=5s CMD bash -c "exec 3<>/dev/tcp/127.0.0.1/80"
STOPSIGNAL SIGTERM
ENTRYPOINT ["front-entrypoint"]
