# feedsvc's image: the package, its console script, and the service (`feedsvc run`: the schedule, the web
# archive on port 8000 and, with a token, the Telegram bot). Migrations run on every start.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY feedsvc ./feedsvc
COPY templates ./templates
COPY migrations ./migrations
RUN pip install --no-cache-dir . && useradd --create-home feedsvc && mkdir /data && chown feedsvc /data
USER feedsvc
ENV FEEDSVC_DATA_DIR=/data FEEDSVC_WEB_HOST=0.0.0.0 FEEDSVC_WEB_PORT=8000 PYTHONUNBUFFERED=1
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"
# SIGTERM lets a running job finish (the scheduler shuts down with wait=True): give it time to.
STOPSIGNAL SIGTERM
ENTRYPOINT ["sh", "-c", "feedsvc db upgrade && exec feedsvc \"$@\"", "feedsvc"]
CMD ["run"]
