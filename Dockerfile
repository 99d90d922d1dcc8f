# balanca in a container: slim Python, a non-root user, the twistd plugin cache built in.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --system --home-dir /var/lib/balanca --create-home --groups dialout balanca

WORKDIR /src
COPY setup.cfg pyproject.toml README.md ./
COPY balanca ./balanca
COPY twisted ./twisted
COPY web ./web
RUN python -m venv /opt/balanca \
    && /opt/balanca/bin/pip install '.[mysql]' \
    && /opt/balanca/bin/twistd --help > /dev/null \
    && /opt/balanca/bin/twistd balanca --help > /dev/null \
    && rm -rf /src

USER balanca
WORKDIR /var/lib/balanca
VOLUME ["/var/lib/balanca"]
EXPOSE 8080
ENV PATH=/opt/balanca/bin:$PATH

HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/api/health', timeout=4).status != 200)"

ENTRYPOINT ["twistd", "-n", "--pidfile=", "--logfile=-", "balanca"]
CMD ["--http", "dualstack:8080", "--db", "sqlite:/var/lib/balanca/balanca.sqlite3"]
