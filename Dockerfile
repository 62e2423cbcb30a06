# The monitor service's image (docker-compose.yml's `monitor`): `otel-monitor serve` with everything it needs, the
# package, the shipped alert rules and the example config. PromQL is checked by the promql-parser package (a
# dependency), so promtool is not needed. The demo backend and the fake providers have their own image:
# examples/Dockerfile.
FROM python:3.11-slim

# FFmpeg: the health check runs it (`health.ffmpeg_binary`); without it the FFmpeg P0 would fire.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
# Only what the install needs, so editing the config files does not reinstall the dependencies. The service is the
# [monitor] extra, at the versions the tests ran (constraints.txt).
COPY pyproject.toml README.md constraints.txt ./
COPY otel_monitor ./otel_monitor
RUN pip install --no-cache-dir '.[monitor]' -c constraints.txt
# examples/monitor.yaml names its rules file as ../config/alert-rules.yaml.
COPY config/alert-rules.yaml config/thresholds.yaml ./config/
COPY examples/monitor.yaml ./examples/monitor.yaml

# The app user owns the working directory: logs/, reports/ (daily summaries) and a SQLite store are made there.
RUN useradd --create-home --uid 10001 app \
    && chown app /app
USER app

ENV PYTHONUNBUFFERED=1
EXPOSE 8080
CMD ["otel-monitor", "serve", "--config", "/app/examples/monitor.yaml"]
