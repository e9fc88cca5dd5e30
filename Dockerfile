# The CyxWiz daemon in a container (docs/install.md):
#
#   docker build -t cyxwiz .
#   docker run --rm -v cyxwiz:/data cyxwiz init
#   docker run -d --name cyxwiz -v cyxwiz:/data -p 4250:4250/tcp -p 4250:4250/udp cyxwiz
#
# The repo lives in the /data volume. The CLI runs in the container:
# docker exec cyxwiz cyxwiz swarm peers.
# docker buildx build --platform linux/amd64,linux/arm64 builds both on the
# build machine's own architecture.

# The Go version of go.mod's go line.
ARG GO_VERSION=1.26.8

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
# The whole tree, .git included: the binary is stamped with its commit
# (and VERSION, else the nearest vX.Y.Z tag), as make release stamps it.
COPY . .
ARG TARGETOS=linux
ARG TARGETARCH=amd64
ARG VERSION
# The same target as make release: a static binary (CGO_ENABLED=0, so GPUs
# are found through nvidia-smi, which the NVIDIA container toolkit mounts).
RUN make dist/cyxwiz-${TARGETOS}-${TARGETARCH} ${VERSION:+VERSION=$VERSION} && \
	cp dist/cyxwiz-${TARGETOS}-${TARGETARCH} /cyxwiz

FROM debian:bookworm-slim
# CA certificates for the Solana RPC endpoints.
RUN apt-get update && \
	apt-get install -y --no-install-recommends ca-certificates && \
	rm -rf /var/lib/apt/lists/* && \
	useradd --system --uid 10001 --user-group --home-dir /data --no-create-home cyxwiz && \
	mkdir /data && chown cyxwiz:cyxwiz /data && chmod 0700 /data
COPY --from=build /cyxwiz /usr/local/bin/cyxwiz
ENV CYXWIZ_PATH=/data
VOLUME /data
USER cyxwiz
WORKDIR /data
# The swarm (TCP and QUIC). The API (5250) listens on the container's
# loopback unless api.addr says otherwise.
EXPOSE 4250/tcp 4250/udp
ENTRYPOINT ["cyxwiz"]
CMD ["daemon"]
