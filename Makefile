# mooring — build, test, install. Run as root on a Debian 12 host for the
# root and integration tests and the demo; `make test-unit` needs neither.

PREFIX     ?= /usr/local
DESTDIR    ?=
VERSION    ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
TOOLS      := $(CURDIR)/.tools/bin
BINARIES   := $(patsubst cmd/%/main.go,%,$(wildcard cmd/*/main.go))
LDFLAGS    := -s -w -X github.com/mooring-dev/mooring/internal/version.Version=$(VERSION)
GO_BUILD   := CGO_ENABLED=0 go build -trimpath -ldflags '$(LDFLAGS)'
FUZZTIME   ?= 30s
BENCHTIME  ?= 20x
HOOKS_DIR  := $(PREFIX)/share/containers/oci/hooks.d

export MOORING_TOOLS := $(TOOLS)

.PHONY: all build prereqs tools test test-unit bench fuzz install demo lint clean

all: build

build: $(addprefix bin/,$(BINARIES))

bin/%: FORCE
	@echo "build: $@"
	@$(GO_BUILD) -o $@ ./cmd/$*

FORCE:

prereqs:
	@scripts/prereqs.sh

tools: prereqs
	@scripts/tools.sh

test: prereqs tools lint
	@echo "test: unit, root and integration tests (real loop devices, runc, podman, docker, containerd)"
	go test -count=1 -timeout 45m ./...
	@echo "test: every fuzz target for 50000 executions (tenant input parsers, config.json rewriter)"
	@$(MAKE) --no-print-directory fuzz FUZZTIME=50000x

test-unit:
	go test -count=1 -short ./annotations/ ./config/ ./volume/ ./cli/ ./shim/ ./nri/

bench: prereqs tools
	@echo "bench: core, devices, container start and rbd through FUSE (ratios in one run)"
	go test -run '^$$' -bench . -benchtime $(BENCHTIME) -timeout 30m ./volume/ ./devices/ ./integration/
	go test -run '^$$' -bench . -benchtime 3x -timeout 30m ./backends/rbd/

fuzz:
	@for pkg in $$(go list ./...); do \
		for target in $$(go test -list 'Fuzz.*' $$pkg | grep '^Fuzz'); do \
			echo "fuzz: $$pkg $$target for $(FUZZTIME)"; \
			go test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

lint:
	go vet ./...
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@if command -v duplicates >/dev/null; then duplicates; fi

install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(HOOKS_DIR) $(DESTDIR)/etc/mooring
	install -m 0755 $(addprefix bin/,$(BINARIES)) $(DESTDIR)$(PREFIX)/bin/
	@for f in deploy/hooks.d/*.json; do \
		[ -e "$$f" ] || continue; \
		sed 's|/usr/local/bin/mooring|$(PREFIX)/bin/mooring|' $$f > $(DESTDIR)$(HOOKS_DIR)/$$(basename $$f); \
		echo "install: $(DESTDIR)$(HOOKS_DIR)/$$(basename $$f)"; \
	done
	@if [ -e $(DESTDIR)/etc/mooring/config.toml ]; then \
		echo "install: keeping $(DESTDIR)/etc/mooring/config.toml"; \
	else \
		install -m 0644 config/default.toml $(DESTDIR)/etc/mooring/config.toml; \
		echo "install: $(DESTDIR)/etc/mooring/config.toml (the default)"; \
	fi

demo: prereqs tools build
	@scripts/demo.sh

clean:
	rm -rf bin/
