# CyxWiz developer tasks. `make` alone prints this help.

GO        ?= go
BIN       := bin/cyxwiz
PKGS      := ./...
TESTFLAGS ?= -race -count=1 -timeout 20m
# nvml: GPU detection through the driver's library (go-nvml, cgo) rather
# than nvidia-smi. openblas: the fast GEMM path (OpenBLAS through cgo) where
# the library is installed; without it the same code builds on gonum's
# pure-Go GEMM.
GOTAGS    ?= nvml $(shell scripts/have-openblas.sh)
CUDA_SDK  ?= .cache/cuda-sdk
FUZZTIME  ?= 30s
# NVML's header marks many functions deprecated; those warnings are noise.
export CGO_CFLAGS ?= -O2 -g -Wno-deprecated-declarations
# make release: the platforms, the folder, and the version stamped into the
# binaries (the nearest vX.Y.Z tag, else node.Version's default); the commit
# is stamped from git, as in make build.
RELEASE_PLATFORMS ?= linux-amd64 linux-arm64
DIST      ?= dist
VERSION   ?= $(shell git describe --tags --match 'v[0-9]*' 2>/dev/null | sed 's/^v//')
RELEASE_LDFLAGS = -s -w $(if $(VERSION),-X github.com/cyxwiz/cyxwiz/node.Version=$(VERSION))

.DEFAULT_GOAL := help

.PHONY: help build release cuda-worker ptx kubo ledger test test-short bench sim fuzz demo lint fmt docs clean

help: ## print this help
	@echo "CyxWiz make targets:"
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/cyxwiz (GPU detection through NVML; OpenBLAS when it is installed)
	$(GO) build -buildvcs=auto -tags "$(GOTAGS)" -o $(BIN) ./cmd/cyxwiz

release: $(RELEASE_PLATFORMS:%=$(DIST)/cyxwiz-%) ## build static binaries for RELEASE_PLATFORMS into dist/, with SHA256SUMS
	cd $(DIST) && sha256sum $(RELEASE_PLATFORMS:%=cyxwiz-%) > SHA256SUMS

# One static release binary, dist/cyxwiz-OS-ARCH; the Dockerfile builds
# its own this way. Without cgo it detects GPUs through nvidia-smi.
$(DIST)/cyxwiz-%: FORCE
	CGO_ENABLED=0 GOOS=$(word 1,$(subst -, ,$*)) GOARCH=$(word 2,$(subst -, ,$*)) \
		$(GO) build -trimpath -buildvcs=auto -ldflags "$(RELEASE_LDFLAGS)" -o $@ ./cmd/cyxwiz

FORCE: # go build decides what is out of date

cuda-worker: ## build bin/cyxwiz-cuda-worker, the GPU trainer (fetches CUDA headers and makes link stubs first)
	./scripts/cuda-sdk.sh $(CUDA_SDK)
	. $(CUDA_SDK)/env.sh && $(GO) build -tags "cuda $(GOTAGS)" -o bin/cyxwiz-cuda-worker ./cmd/cyxwiz-cuda-worker

ptx: ## compile the GPU kernels (compute/train/kernels) to PTX with clang
	./scripts/build-ptx.sh

kubo: ## build the stock IPFS Kubo binary (bin/ipfs) that the interop tests run against
	./scripts/build-kubo.sh bin/ipfs

ledger: ## install the local Solana ledger (tools/ledger: LiteSVM behind a JSON-RPC server) that settlement tests and devnets run
	@# --loglevel=error: npm warns (EBADENGINE) that commander 15, which only the
	@# CLI of @solana/errors uses and the ledger never runs, wants Node.js 22.
	@[ -d tools/ledger/node_modules/litesvm ] || npm ci --prefix tools/ledger --no-audit --no-fund --loglevel=error

test: kubo ledger ## run every test (unit, many-node, end-to-end, Kubo interop) with the race detector
	$(GO) test -tags "$(GOTAGS)" $(TESTFLAGS) $(PKGS)
	$(GO) test -count=1 ./compute/train   # the pure-Go GEMM path too
	$(GO) test -count=1 ./compute/gpu     # GPU detection through nvidia-smi too
	npm test --prefix tools/ledger --silent

test-short: ## run the fast tests only: no Kubo, no ledger, no end-to-end daemons
	$(GO) test -tags "$(GOTAGS)" -short -count=1 $(PKGS)

# The indexer's query benchmarks run on a history of this many receipts.
INDEX_BENCH_ROWS ?= 1000000

bench: build ## print the benchmark figures: daemon start, memory, CPU; 256 MiB transfer vs TCP, libp2p, Kubo; jobs; GEMM vs peak, MNIST epoch; Go benchmarks (the indexer on SQLite and PostgreSQL at INDEX_BENCH_ROWS receipts, a new node's first peer through the rendezvous, among them)
	CYXWIZ_INDEX_BENCH_ROWS=$(INDEX_BENCH_ROWS) $(GO) test -tags "$(GOTAGS)" -run '^$$' -bench . -benchmem -timeout 60m $(PKGS)
	$(GO) run -tags "$(GOTAGS)" ./test/bench -bin $(BIN)

fuzz: ## run every fuzz test of the module for FUZZTIME each (default 30s)
	./scripts/fuzz.sh $(FUZZTIME)

demo: build ## start a local swarm of three daemons; run a WASM job, train an MNIST classifier across it and serve it
	GOOS=wasip1 GOARCH=wasm $(GO) build -o bin/wordcount.wasm ./examples/wordcount
	$(GO) build -o bin/mnist-digits ./examples/mnist/digits
	./scripts/mnist-data.sh >/dev/null
	@$(MAKE) --no-print-directory ledger || echo "no local ledger (it needs Node.js and npm): the demo's jobs are not paid"
	./scripts/demo.sh

# make sim: the swarm sizes and jobs of the market's simulation.
SIM_NODES ?= 1000,10000
SIM_JOBS  ?= 20

sim: ## simulate the market protocol at SIM_NODES nodes on a virtual clock (docs/scale.md)
	$(GO) run ./test/sim -nodes $(SIM_NODES) -jobs $(SIM_JOBS)

lint: ## gofmt, go vet and staticcheck (pinned in tools/go.mod)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet -tags "$(GOTAGS)" $(PKGS)
	cd tools && $(GO) build -o ../bin/staticcheck honnef.co/go/tools/cmd/staticcheck
	./bin/staticcheck -tags "$(GOTAGS)" $(PKGS)

docs: ## regenerate docs/cli.md from the command tree (cmd/cli's tests fail when it is stale)
	$(GO) test -count=1 -run '^TestCLIDocs$$' ./cmd/cli -update

fmt: ## format the code
	gofmt -w $$(git ls-files '*.go')

clean: ## remove build outputs
	rm -rf bin $(DIST)
