# feedsvc's image: the package, its console script, and the service (`feedsvc run`: the schedule, the web
# archive on port 8000 and, with a token, the Telegram bot). Migrations run on every start, once the
# database answers. The base is plain Debian bookworm (Python 3.11 from Debian); where no registry is
# reachable, build on a locally imported one: `--build-arg BASE=localhost/debian:bookworm-slim` (made by
# deploy/podman-setup.sh). Without the semantic extra (torch): feedsvc ranks lexically.
ARG BASE=docker.io/library/debian:bookworm-slim
FROM ${BASE}
ENV VIRTUAL_ENV=/opt/feedsvc PATH=/opt/feedsvc/bin:$PATH PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/feedsvc
WORKDIR /app
# the dependencies (and the build's) first, from pyproject.toml alone: a change to the code does not
# reinstall them, and installing the package itself needs no network
# (behind a TLS-inspecting proxy, hand pip the host's CA bundle: `--secret id=cacert,src=<bundle>`)
COPY pyproject.toml ./
RUN --mount=type=secret,id=cacert \
    if [ -s /run/secrets/cacert ]; then export PIP_CERT=/run/secrets/cacert; fi \
 && python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb')); \
      print(*p['project']['dependencies'], *p['build-system']['requires'], sep='\n')" > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY README.md ./
COPY feedsvc ./feedsvc
COPY templates ./templates
COPY migrations ./migrations
RUN pip install --no-deps --no-build-isolation . && rm -rf build *.egg-info \
 && useradd --create-home feedsvc && mkdir /data /site && chown feedsvc /data /site
USER feedsvc
ENV FEEDSVC_DATA_DIR=/data FEEDSVC_WEB_HOST=0.0.0.0 FEEDSVC_WEB_PORT=8000
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"
# SIGTERM lets a running job finish (the scheduler shuts down with wait=True): give it time to.
STOPSIGNAL SIGTERM
# --wait: the database may still be starting beside this container (an engine need not honour depends_on)
ENTRYPOINT ["sh", "-c", "feedsvc db upgrade --wait 60 && exec feedsvc \"$@\"", "feedsvc"]
CMD ["run"]
