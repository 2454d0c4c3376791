# Moot server image: the embedded server with its speech model assembled at build time (no download at run time).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY server ./server
COPY models ./models
COPY client ./client
RUN pip install ".[postgres]" \
 && MOOT_DATA_DIR=/opt/moot moot models \
 && useradd --system --home /data moot && mkdir -p /data && chown moot /data
USER moot
ENV MOOT_HOST=0.0.0.0 MOOT_PORT=8000 MOOT_DATA_DIR=/data MOOT_MODEL_CACHE_DIR=/opt/moot/models MOOT_CLIENT_DIR=/app/client
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz').status != 200)"
CMD ["moot", "serve"]
