# The reverse proxy of compose.yaml: Debian's nginx, the same package and version that
# .ci/validate-deploy.sh checks nginx.conf with (`nginx -t`) and that the integration test
# `deploy_proxy` runs in front of real dbcert replicas.
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends nginx curl \
    && rm -rf /var/lib/apt/lists/*
# nginx.conf and the TLS files are mounted by compose.yaml.
EXPOSE 8443
STOPSIGNAL SIGQUIT
CMD ["nginx", "-e", "stderr", "-g", "daemon off;"]
