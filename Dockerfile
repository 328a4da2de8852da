# The conformer REST service in a container.
#   docker build -t adjoint-sampling .
#   docker run -p 8000:8000 -v as-data:/data adjoint-sampling
# For a smaller image with the CPU-only PyTorch build:
#   docker build --build-arg TORCH_INDEX_URL=<PyTorch CPU wheel index URL> -t adjoint-sampling .

# Browser assets of the web page (3Dmol.js) from the npm registry, pinned by package-lock.json.
FROM node:20-slim AS web
WORKDIR /web
COPY service/web/package.json service/web/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error

FROM python:3.11-slim
ARG TORCH_INDEX_URL=""
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OMP_NUM_THREADS=1 \
    AS_HOST=0.0.0.0 \
    AS_PORT=8000 \
    AS_DB_PATH=/data/jobs.sqlite3
# shared libraries the RDKit and tblite wheels load
RUN apt-get update \
 && apt-get install -y --no-install-recommends libxrender1 libxext6 libgomp1 \
 && rm -rf /var/lib/apt/lists/*
RUN useradd --create-home --uid 10001 app \
 && mkdir -p /data && chown app:app /data
WORKDIR /app
COPY pyproject.toml README.md ./
COPY adjoint_sampling/ adjoint_sampling/
COPY energy/ energy/
COPY models/ models/
COPY service/ service/
COPY benchmarks/ benchmarks/
COPY --from=web /web/node_modules/ service/web/node_modules/
# Editable install: the code, the web assets and models/shipped/default.pt are used in place.
RUN if [ -n "$TORCH_INDEX_URL" ]; then pip install "torch==2.13.0" --index-url "$TORCH_INDEX_URL"; fi \
 && pip install -e . \
 && if [ -f models/shipped/default.pt ]; then echo "shipped model: models/shipped/default.pt"; \
    else echo "WARNING: no models/shipped/default.pt; the image serves the RDKit ETKDG baseline"; fi
USER app
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-m", "adjoint_sampling.service.healthcheck"]
ENTRYPOINT ["adjoint-sampling", "serve"]
