FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /srv/execution

COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin execution \
    && install -d -o 10001 -m 0700 /var/lib/execution

COPY app/ app/

# Where a SQLite store can live (STORAGE_URL=sqlite:////var/lib/execution/orders.db):
# mount a volume there to keep it.
USER 10001
# uvicorn reads its options from UVICORN_* variables too: the probe below follows
# UVICORN_PORT, so serve on another port with `-e UVICORN_PORT=9000`.
ENV UVICORN_HOST=0.0.0.0 \
    UVICORN_PORT=8001
EXPOSE 8001

# The probe uses the image's own Python: slim images carry neither curl nor wget.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('UVICORN_PORT', '8001') + '/healthz', timeout=2)"]

# The bounded protocol closes idle connections and requests that never finish
# (REQUEST_TIMEOUT_MS) and refuses oversized headers (MAX_HEADER_BYTES).
CMD ["uvicorn", "app.main:app", "--http", "app.web.connections:BoundedHttpProtocol"]
