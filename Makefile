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
# Tests build with failpoints (crash tests need them); release binaries never
# do, and every built binary is checked for them.
TEST_TAGS  := -tags failpoints
BENCHTIME  ?= 20x
# Where podman and CRI-O read hooks.d files by default, whatever PREFIX is:
# a file anywhere else is ignored without a word and containers start
# without their volumes.
HOOKS_DIR  ?= /usr/share/containers/oci/hooks.d
SYSCONFDIR ?= /etc
HOOK_FILES := $(notdir $(wildcard deploy/hooks.d/*.json))
UDEV_RULES_DIR ?= /etc/udev/rules.d

export MOORING_TOOLS := $(TOOLS)

.PHONY: all build prereqs tools test test-unit bench fuzz install uninstall demo lint clean

all: build

build: $(addprefix bin/,$(BINARIES))

bin/%: FORCE
	@echo "build: $@"
	@$(GO_BUILD) -o $@ ./cmd/$*
	@if grep -q MOORING_FAILPOINT $@ || go version -m $@ | grep -q 'tags=.*failpoints'; then \
		echo "build: $@ contains failpoint code; release binaries are built without -tags failpoints"; rm -f $@; exit 1; fi

FORCE:

prereqs:
	@scripts/prereqs.sh

tools: prereqs
	@scripts/tools.sh

test: prereqs tools lint
	@echo "test: unit, root and integration tests (real loop devices, runc, podman, docker, containerd)"
	go test $(TEST_TAGS) -count=1 -timeout 45m ./...
	@echo "test: every fuzz target for 50000 executions (tenant input parsers, config.json rewriter)"
	@$(MAKE) --no-print-directory fuzz FUZZTIME=50000x

test-unit:
	go test $(TEST_TAGS) -count=1 -short ./annotations/ ./config/ ./volume/ ./cli/ ./hook/ ./shim/ ./nri/ ./internal/oci/ ./internal/atomicfile/ ./internal/vocab/

bench: prereqs tools
	@echo "bench: core, devices, container start and rbd through FUSE (ratios in one run)"
	go test -run '^$$' -bench . -skip 'RBDVolumeIO|PoolIOOptions' -benchtime $(BENCHTIME) -timeout 30m ./volume/ ./devices/ ./integration/
	go test -run '^$$' -bench . -benchtime 3x -timeout 30m ./backends/rbd/
	go test -run '^$$' -bench 'RBDVolumeIO|PoolIOOptions' -benchtime 3x -timeout 30m ./integration/

fuzz:
	@for pkg in $$(go list ./...); do \
		for target in $$(go test $(TEST_TAGS) -list 'Fuzz.*' $$pkg | grep '^Fuzz'); do \
			echo "fuzz: $$pkg $$target for $(FUZZTIME)"; \
			go test $(TEST_TAGS) -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

lint:
	go vet ./...
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@if command -v duplicates >/dev/null; then duplicates; fi

install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(HOOKS_DIR) $(DESTDIR)$(SYSCONFDIR)/mooring
	install -m 0755 $(addprefix bin/,$(BINARIES)) $(DESTDIR)$(PREFIX)/bin/
	install -D -m 0644 deploy/udev/10-mooring-loop.rules $(DESTDIR)$(UDEV_RULES_DIR)/10-mooring-loop.rules
	@for f in $(HOOK_FILES); do \
		sed 's|"/usr/local/bin/mooring"|"$(PREFIX)/bin/mooring"|' deploy/hooks.d/$$f > $(DESTDIR)$(HOOKS_DIR)/$$f || exit 1; \
		chmod 0644 $(DESTDIR)$(HOOKS_DIR)/$$f; \
		echo "install: $(DESTDIR)$(HOOKS_DIR)/$$f (runs $(PREFIX)/bin/mooring)"; \
	done
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/mooring/config.toml ]; then \
		echo "install: keeping $(DESTDIR)$(SYSCONFDIR)/mooring/config.toml"; \
	else \
		install -m 0644 config/default.toml $(DESTDIR)$(SYSCONFDIR)/mooring/config.toml; \
		echo "install: $(DESTDIR)$(SYSCONFDIR)/mooring/config.toml (the default)"; \
	fi

# uninstall removes the files install adds (same PREFIX, HOOKS_DIR and
# SYSCONFDIR). The config goes only while it is the shipped default: an
# edited config is the admin's and stays. Directories stay.
uninstall:
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/bin/,$(BINARIES)) $(addprefix $(DESTDIR)$(HOOKS_DIR)/,$(HOOK_FILES)) $(DESTDIR)$(UDEV_RULES_DIR)/10-mooring-loop.rules
	@c=$(DESTDIR)$(SYSCONFDIR)/mooring/config.toml; \
	if [ ! -e $$c ]; then :; \
	elif cmp -s config/default.toml $$c; then rm -f $$c; echo "uninstall: removed $$c (the default)"; \
	else echo "uninstall: keeping $$c (edited: remove it by hand)"; fi

demo: prereqs tools build
	@scripts/demo.sh

clean:
	rm -rf bin/
