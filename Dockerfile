# One image for every VoxLedger role; docker-compose.yml picks the role by command.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    VOXLEDGER_CONFIG=/etc/voxledger/voxledger.toml VOXLEDGER_DATA_DIR=/var/lib/voxledger

WORKDIR /app
COPY pyproject.toml README.md ./
COPY voxledger voxledger
COPY ingest ingest
COPY processors processors
COPY warehouse warehouse
COPY dashboard dashboard
RUN pip install --no-cache-dir . \
    && useradd --system --home /var/lib/voxledger voxledger \
    && mkdir -p /var/lib/voxledger && chown voxledger /var/lib/voxledger

USER voxledger
ENTRYPOINT ["voxledger"]
CMD ["--help"]
