# feedsvc's image: the package and its console script. The schedule and web server arrive with `feedsvc run`
# (issue 7); until then the compose service runs one fetch + digest and exits.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY feedsvc ./feedsvc
COPY templates ./templates
COPY migrations ./migrations
RUN pip install --no-cache-dir . && useradd --create-home feedsvc
USER feedsvc
ENV FEEDSVC_DATA_DIR=/data
VOLUME ["/data"]
ENTRYPOINT ["feedsvc"]
CMD ["--help"]
