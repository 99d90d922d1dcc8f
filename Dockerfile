# balanca in a container: slim Python, a non-root user, the twistd plugin cache built in.
# CI has no Docker engine: tests/test_ops_docker.py replays these steps in a temporary folder.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

# dialout owns the serial ports (gid 20, as on a Debian or Ubuntu host).
RUN useradd --system --home-dir /var/lib/balanca --create-home --groups dialout balanca

WORKDIR /src
COPY setup.cfg pyproject.toml README.md ./
COPY balanca ./balanca
COPY twisted ./twisted
COPY web ./web
# Twisted keeps a cache of the plugins it finds (dropin.cache) beside them, where the balanca
# user cannot write: build it now, so that every start finds it fresh.
RUN python -m venv /opt/balanca/venv \
    && /opt/balanca/venv/bin/pip install '.[mysql]' \
    && /opt/balanca/venv/bin/twistd --help > /dev/null \
    && /opt/balanca/venv/bin/twistd balanca --help > /dev/null \
    && rm -rf /src
COPY contrib/docker/healthcheck.py /opt/balanca/healthcheck.py
# An example configuration file with two scales; mount your own at /etc/balanca/balanca.toml
# and pass `--config /etc/balanca/balanca.toml` (README, "The configuration file").
COPY contrib/systemd/balanca.toml /etc/balanca/balanca.example.toml

USER balanca
# SQLite's default file and the spill journal (kept while MySQL is down) land here.
WORKDIR /var/lib/balanca
VOLUME ["/var/lib/balanca"]
ENV PATH=/opt/balanca/venv/bin:$PATH
EXPOSE 8080

# 200 from /api/health: the scale is live and the database takes writes.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "/opt/balanca/healthcheck.py"]

ENTRYPOINT ["twistd", "-n", "--pidfile=", "--logfile=-", "balanca"]
CMD ["--http", "dualstack:8080"]
