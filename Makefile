# siobridge build and CI targets. CI runs `make test` (through .ci/run).
#
#   make test        gofmt check, go vet, staticcheck, go test -race, fuzz-smoke
#   make lint        gofmt check, go vet, staticcheck
#   make fuzz-smoke  every fuzz target for FUZZTIME (default 10s) each
#   make fuzz        the same with FUZZTIME=3m (override: make fuzz FUZZTIME=1h)
#   make bench       all Go benchmarks, then siobench: siobridge against the Node.js
#                    reference bridge, every scenario at full size (docs/performance.md)
#   make bench-smoke siobench at tiny sizes: the harness works, nothing is lost
#   make deps        apt packages + npm ci for the interop tests and the client bundle
#                    (.ci/install-deps)
#   make build       bin/siobridge with the socket.io-client bundle embedded
#   make demo        siobridge + the chat app of examples/chat on http://127.0.0.1:7896
#
# Targets run serially, in the order listed as prerequisites.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := test
.NOTPARALLEL:

GO ?= go
# Extra flags for the go test -race step, e.g. GOTESTFLAGS='-run TestFoo -v'.
GOTESTFLAGS ?=
# Bounds the go test -race step (each package's test binary): far above what the whole
# `make test` takes in CI (about 5 minutes), below CI's 90. A test that hangs then fails with
# every goroutine's stack instead of using up the run. GOTESTFLAGS='-timeout 1h' overrides it.
UNIT_TIMEOUT ?= 20m
FUZZTIME ?= 10s
fuzz: FUZZTIME = 3m

STATICCHECK_VERSION := v0.8.2
STATICCHECK := bin/staticcheck

.PHONY: test lint fmt-check vet staticcheck unit fuzz-smoke fuzz bench bench-smoke deps bundle binary build clean demo

test: fmt-check vet staticcheck unit fuzz-smoke bench-smoke

lint: fmt-check vet staticcheck

# Prints "no Go packages" and succeeds when the module has none yet (go vet and
# go test fail on an empty ./...).
NO_PKGS_GUARD = if [[ -z "$$($(GO) list -e ./... 2>/dev/null)" ]]; then echo "no Go packages; skipping"; exit 0; fi

# gofmt -l over tracked and untracked-but-not-ignored .go files (outside
# testdata/, which may hold deliberately malformed Go); fails listing them.
fmt-check:
	@echo "==> gofmt -l"
	@if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
		all=$$(git ls-files --cached --others --exclude-standard -- '*.go'); \
	else \
		all=$$(find . -name '*.go' -not -path './.git/*' -not -path '*/node_modules/*'); \
	fi; \
	files=(); \
	while IFS= read -r f; do \
		if [[ -n $$f && -f $$f && ! $$f =~ (^|/)testdata/ ]]; then files+=("$$f"); fi; \
	done <<< "$$all"; \
	if (( $${#files[@]} == 0 )); then echo "no .go files"; exit 0; fi; \
	if ! bad=$$(gofmt -l "$${files[@]}"); then \
		echo "gofmt failed (syntax errors above)" >&2; exit 1; \
	fi; \
	if [[ -n $$bad ]]; then \
		echo "These files are not gofmt-formatted (run: gofmt -w <file>):" >&2; \
		printf '  %s\n' $$bad >&2; \
		exit 1; \
	fi; \
	echo "$${#files[@]} files ok"

vet:
	@echo "==> go vet ./..."
	@$(NO_PKGS_GUARD); $(GO) vet ./...

staticcheck: $(STATICCHECK)
	@echo "==> staticcheck ./..."
	@$(NO_PKGS_GUARD); $(STATICCHECK) ./...

unit:
	@echo "==> go test -race -count=1 -timeout $(UNIT_TIMEOUT) ./..."
	@$(NO_PKGS_GUARD); $(GO) test -race -count=1 -timeout $(UNIT_TIMEOUT) $(GOTESTFLAGS) ./...

# Rebuild bin/staticcheck when it is missing or reports another version.
ifeq ($(findstring ($(STATICCHECK_VERSION:v%=%)),$(shell $(STATICCHECK) -version 2>/dev/null)),)
.PHONY: $(STATICCHECK)
endif
$(STATICCHECK):
	@echo "==> installing staticcheck $(STATICCHECK_VERSION) into bin/"
	GOBIN=$(CURDIR)/bin $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

# Runs every fuzz target of every package for FUZZTIME, one at a time, and lists the failing
# ones at the end (.ci/fuzz; it tells Go 1.26's fuzzing coordinator's deadline race,
# golang/go#75804, from a failing input). A failing input is saved under
# <pkg>/testdata/fuzz/<Target>/ and becomes a regression test.
fuzz-smoke fuzz:
	@echo "==> fuzz: every fuzz target for $(FUZZTIME) each"
	@GO=$(GO) bash .ci/fuzz $(FUZZTIME)

# siobench pins the servers to CPU 0 and runs itself on CPU 1 (on a machine with fewer than
# two CPUs neither is pinned). SIOBENCHFLAGS adds flags, e.g. SIOBENCHFLAGS='-scenario idle'.
SIOBENCHFLAGS ?=
SIOBENCH_PIN = $(if $(filter-out 0 1,$(shell nproc 2>/dev/null || echo 1)),taskset -c 1,)
SIOBENCH_SERVER_CPU = $(if $(SIOBENCH_PIN),0,)

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...
	@echo "==> siobench (about 10 minutes); the table also goes to bin/siobench.md"
	$(GO) build -o bin/siobench ./cmd/siobench
	$(SIOBENCH_PIN) bin/siobench -server-cpu '$(SIOBENCH_SERVER_CPU)' -markdown bin/siobench.md $(SIOBENCHFLAGS)

# bench-smoke: every siobench scenario with 50 clients against both servers; fails when a
# scenario fails or a message is lost, never on a timing.
bench-smoke:
	@echo "==> siobench -smoke"
	@$(GO) build -o bin/siobench ./cmd/siobench
	@$(SIOBENCH_PIN) bin/siobench -smoke -server-cpu '$(SIOBENCH_SERVER_CPU)' $(SIOBENCHFLAGS)

deps:
	bash .ci/install-deps

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

# bundle copies socket.io-client's dist files (the version pinned in
# proxy/clientdist-npm/package-lock.json, which npm ci installs there) into
# proxy/clientdist, where the build embeds them. They are never committed.
bundle:
	bash proxy/clientdist/update.sh

# binary builds bin/siobridge from what is in the tree; the Dockerfile runs it too.
binary:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o bin/siobridge ./cmd/siobridge

build: bundle binary

# demo: the chat app of examples/chat behind siobridge, in memory, on
# http://127.0.0.1:7896 (the app itself listens on 127.0.0.1:3000).
demo: build
	bash examples/chat/run.sh

clean:
	rm -rf bin
