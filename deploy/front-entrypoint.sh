#!/bin/sh
# The front server's process: nginx in the foreground, reloaded whenever the app's name resolves to a new
# address. nginx looks its upstream up once, at start, and a restarted app container comes back at another
# address (podman gives it a new one): without the reload every proxied request would be a 502.
set -eu
host=${FRONT_UPSTREAM_HOST:-app}
lookup() { getent hosts "$host" | awk '{print $1; exit}' || true; }
nginx -g 'daemon off;' &
pid=$!
trap 'kill -QUIT "$pid" 2>/dev/null; wait "$pid"; exit 0' TERM INT QUIT
last=$(lookup)
while kill -0 "$pid" 2>/dev/null; do
  sleep 2 &
  wait $! || true
  now=$(lookup)
  if [ -n "$now" ] && [ "$now" != "$last" ]; then
    echo "front: $host is now at $now (was ${last:-unresolved}): reloading nginx" >&2
    nginx -s reload && last=$now
  fi
done
wait "$pid"
