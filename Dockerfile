# Vask container image: slim Python, a virtual environment in /opt/vask, runs as an unprivileged user.
#   docker build -t vask .
#   docker run -p 6001:6001 -v vask-data:/var/lib/vask vask
# The build steps are deploy/docker/build.sh, which CI runs outside Docker too (.ci/run).
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
COPY deploy/docker/build.sh /usr/local/bin/vask-build
RUN sh /usr/local/bin/vask-build /opt/vask /src

FROM python:3.12-slim
COPY --from=build /opt/vask /opt/vask
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/vask --create-home --shell /usr/sbin/nologin vask
USER vask
ENV PATH=/opt/vask/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    VASK_HOST=0.0.0.0 \
    VASK_DATA_DIR=/var/lib/vask
WORKDIR /var/lib/vask
VOLUME ["/var/lib/vask"]
EXPOSE 6001 9601
# /ready is 503 while draining, or while the app store or the broker is unreachable (docs/deploy/README.md).
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
    CMD ["/opt/vask/bin/python", "-m", "vask.healthcheck"]
ENTRYPOINT ["vask"]
CMD ["serve"]
