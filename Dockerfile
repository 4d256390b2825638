# aw-worker container image: release build on Debian 12, slim runtime, non-root.
#   docker build -t aw-worker:0.1.0 .        (or, without a daemon: scripts/build-image.sh)
#   docker run --rm -e AW_KAFKA_BROKERS=kafka:9092 aw-worker:0.1.0 --check-config
#   tests/integration/smoke_image.sh runs the image (podman): exit codes, uid, HTTP, SIGTERM.

# ---- build stage ---------------------------------------------------------------------------
FROM debian:bookworm AS build
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config \
      librdkafka-dev libcurl4-openssl-dev libjansson-dev libphonenumber-dev libhiredis-dev \
      libmicrohttpd-dev libprotobuf-dev libicu-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DAW_WERROR=ON -DAW_BUILD_TESTS=OFF \
 && cmake --build /build -j"$(nproc)" --target aw-worker \
 && install -D -m 0755 /build/aw-worker /out/usr/local/bin/aw-worker \
 && strip /out/usr/local/bin/aw-worker

# ---- runtime stage -------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime
ARG DEBIAN_FRONTEND=noninteractive
# Only the shared libraries aw-worker links against (checked below) and the CA store.
# apt's caches go too (package lists, pkgcache.bin, downloaded .debs: ~95 MB when the base has no
# docker-clean hook, as the bases scripts/build-image.sh makes).
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      ca-certificates librdkafka1 libcurl4 libjansson4 libphonenumber8 libhiredis0.14 \
      libmicrohttpd12 \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb \
      /var/log/apt /var/log/dpkg.log \
 && groupadd --system --gid 10001 aw \
 && useradd --system --uid 10001 --gid aw --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin aw
COPY --from=build /out/ /
# Fail the image build when a library is missing, and smoke-test the binary.
RUN if ldd /usr/local/bin/aw-worker | grep -q 'not found'; then \
      ldd /usr/local/bin/aw-worker; exit 1; \
    fi \
 && /usr/local/bin/aw-worker --version
USER 10001:10001
EXPOSE 9464
# SIGTERM drains and exits 0 (aw-worker handles signals itself, also as PID 1).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/aw-worker"]
CMD ["run"]
