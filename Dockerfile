# The operator image: dependencies from a lock file with hashes, no shell at run time.
#
# Build: docker build -t ghcr.io/pulsebase/pulsebase-operator:0.1.0 .
# The runtime base is distroless Debian 12 (Python 3.11, no shell, no package manager);
# the builder is Debian 12 too, so the virtual environment's interpreter path matches.

FROM debian:12-slim AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3=3.11.2-1+b1 python3-venv=3.11.2-1+b1 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
RUN python3 -m venv /venv
COPY requirements/ requirements/
RUN /venv/bin/pip install --no-cache-dir --require-hashes --only-binary=:all: \
      -r requirements/build.lock -r requirements/operator.lock
COPY pyproject.toml README.md ./
COPY pulsebase_operator pulsebase_operator
RUN /venv/bin/pip install --no-cache-dir --no-deps --no-build-isolation . \
 && /venv/bin/pulsebase-operator version

FROM gcr.io/distroless/python3-debian12:nonroot
COPY --from=build /venv /venv
USER 65532:65532
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
EXPOSE 8080 9090
ENTRYPOINT ["/venv/bin/pulsebase-operator", "run"]
CMD ["--health-address", "0.0.0.0:8080", "--metrics-address", "0.0.0.0:9090"]
