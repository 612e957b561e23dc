# picket — build, test, install. `make help` lists targets.
GO        ?= go
BIN       ?= bin/picket
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
PKGS      := ./...
TESTFLAGS ?=

.PHONY: help build test test-integration bench lint fuzz install uninstall ci clean

help:
	@echo "targets: build test test-integration bench lint fuzz install uninstall ci clean"

build: ## build bin/picket (static, no cgo)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/picket

test: ## unit + integration tests; integration tests skip (with a reason) when root or a binary is missing
	CGO_ENABLED=0 $(GO) test -count=1 $(TESTFLAGS) $(PKGS)

test-integration: ## like test, but a missing prerequisite fails instead of skipping
	PICKET_REQUIRE_INTEGRATION=1 CGO_ENABLED=0 $(GO) test -count=1 $(TESTFLAGS) $(PKGS)

bench: ## throughput and memory figures (auth-log lines/s on one core, peak RSS)
	./ci/bench.sh

lint: ## gofmt + go vet
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

fuzz: ## run every fuzz target briefly (FUZZTIME=30s to go longer)
	./ci/fuzz.sh $(FUZZTIME)

install: build ## install binary, systemd unit, bootstrap file, state dir (DESTDIR supported)
	./install.sh --binary $(BIN)

uninstall:
	./install.sh --uninstall

ci: ## what .ci/run runs on a fresh clone: install test deps, lint, all tests with integration required, build
	./ci/deps.sh
	$(MAKE) lint
	$(MAKE) test-integration
	$(MAKE) build
	./$(BIN) validate examples/config-repo

clean:
	rm -rf bin
