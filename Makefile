# envhub - curated Python environments and sandboxed execution.
#
#   make run        install what is missing, start the engine, build, serve on 127.0.0.1:8000
#   make test       the same set-up, then every test suite
#   make unit       the hermetic unit tests alone (no engine, no network)
#   make fuzz-replay  the fuzz harnesses over their committed corpus (gcc, ASan + UBSan; in test)
#   make fuzz       each fuzz harness under libFuzzer for FUZZ_SECONDS (default 60; clang, ASan +
#                   UBSan); new inputs stay in build-fuzz/, crashes in build-fuzz/crashes/<target>/
#   make fuzz-merge  add what a fuzz run found that reaches new code to tests/fuzz/corpus/
#   make sanitize   every suite with AddressSanitizer + UBSan
#   make bench      latency of POST /execute against `docker run --rm`, and under hostile load
#   make bench-hostile  /health and /execute beside trickling clients and 50 MB uploads
#   make bench-agent  jobs through the in-container agent against exec and the raw baselines
#   make bench-preload  warm pandas jobs with and without policy.preload (data-science image)
#   make soak       30 minutes of mixed jobs at c=10, per minute: answers, RSS, live containers
#   make bench-session  100 calls of one stateful session, against a session by exec
#   make bench-pool  live containers under a mixed c=10 load, removal backlog bounded and not
#   make bench-history  the history API over 1,000,000 seeded executions
#   make bench-history-load  /health and /execute while four clients search those rows
#   make lint       clang-format check, headers compiled alone, cppcheck
#   make cluster-up / cluster-down  three engines in one swarm on loopback, the registry, and
#                   envhub in cluster mode on 127.0.0.1:8100 with a node beside each engine
#   make cluster-test  cluster-up, the cluster-mode tests on those engines, cluster-down
#   make bench-cluster  warm /execute in cluster mode against one engine, and the server's
#                   cost per job placed

CFLAGS     ?= -O2 -g
WARNINGS   := -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wstrict-prototypes -Wmissing-prototypes \
              -Wvla -Wwrite-strings -Wpointer-arith -Wundef
PKGS       := sqlite3 libcurl jansson libarchive libcrypto
BUILD      ?= build
ifdef SANITIZE
SAN        := -fsanitize=$(SANITIZE) -fno-sanitize-recover=all -fno-omit-frame-pointer
BUILD      := build-san
endif
PKG_CFLAGS  = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS    = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
ALL_CFLAGS  = -std=c11 -D_GNU_SOURCE -I. -I$(BUILD)/gen -MMD -MP $(WARNINGS) $(SAN) $(CFLAGS) $(PKG_CFLAGS)
LIBS        = $(PKG_LIBS) -lcivetweb -lpthread -lm

BIN        := $(BUILD)/envhub
STATE      ?= var
IMAGE      ?= envhub/python:bookworm
SOCKET     ?= /var/run/docker.sock
PYTHON     := /usr/bin/python3
export ENVHUB_BIN := $(abspath $(BIN))

MODULES    := core engine sandbox catalog cluster builder executor web cli
LIB_SRC    := $(filter-out cli/main.c web/tls_compat.c,$(foreach m,$(MODULES),$(wildcard $(m)/*.c)))
TLS_SHIM   := $(BUILD)/libenvhub-tls.so
GEN_SRC    := $(BUILD)/gen/migrations_embedded.c $(BUILD)/gen/ui_embedded.c $(BUILD)/gen/templates_embedded.c \
              $(BUILD)/gen/executor_embedded.c
LIB_OBJ    := $(LIB_SRC:%.c=$(BUILD)/%.o) $(GEN_SRC:.c=.o)
MIGRATIONS := $(sort $(wildcard migrations/*.sql))

# The web UI, compiled in: our pages, the OpenAPI document, and Swagger UI,
# ReDoc and the code editor (CodeMirror 6, bundled by esbuild from
# web/ui/vendor/editor-entry.mjs) from npm (versions pinned by
# web/ui/vendor/package-lock.json, fetched by `npm ci` at build time; the
# running server needs no network). Templates: the
# example setup scripts, for the UI's create form.
UI_VENDOR_DIR := web/ui/vendor
UI_NODE    := $(UI_VENDOR_DIR)/node_modules
UI_STAMP   := $(UI_NODE)/.envhub-installed
UI_VENDOR  := $(UI_NODE)/swagger-ui-dist/swagger-ui-bundle.js $(UI_NODE)/swagger-ui-dist/swagger-ui.css \
              $(BUILD)/ui/redoc.standalone.js $(BUILD)/ui/editor.js
UI_OWN     := $(sort $(wildcard web/ui/*.html web/ui/*.css web/ui/*.js web/ui/*.svg)) web/openapi.json
TEMPLATES  := $(filter-out environments/bootstrap-base.sh,\
              $(sort $(wildcard environments/*.sh)))
E2E_DIR    := tests/e2e
E2E_STAMP  := $(E2E_DIR)/node_modules/.envhub-installed
CHROMIUM   ?= /usr/bin/chromium

UNIT_SRC   := $(wildcard tests/unit/test_*.c)
UNIT_BIN   := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
INTEG_SRC  := $(wildcard tests/integration/test_*.c)
INTEG_BIN  := $(INTEG_SRC:tests/integration/%.c=$(BUILD)/tests/%)

# tests/fuzz/: one libFuzzer harness per parser of outside input (fuzz_<target>.c, its
# corpus in tests/fuzz/corpus/<target>/), linked either with fuzz_main.c, the replay of
# a corpus (gcc, sanitized), or with libFuzzer (clang, build-fuzz/, apart from gcc's objects).
FUZZ_MAIN    := tests/fuzz/fuzz_main.c
FUZZ_TARGETS ?= $(sort $(patsubst tests/fuzz/fuzz_%.c,%,$(filter-out $(FUZZ_MAIN),$(wildcard tests/fuzz/fuzz_*.c))))
FUZZ_REPLAY  := $(FUZZ_TARGETS:%=$(BUILD)/fuzz/fuzz_%)
FUZZ_BINS    := $(FUZZ_TARGETS:%=$(BUILD)/fuzzer/fuzz_%)
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
FUZZ_DIR     := build-fuzz
FUZZ_SAN     := -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer

# Debian packages: to build and run, and to test.
DEB_BUILD  := build-essential pkg-config curl ca-certificates openssl libsqlite3-dev libcurl4-openssl-dev \
              libjansson-dev libarchive-dev libcivetweb-dev libssl-dev libcmocka-dev docker.io debootstrap
DEB_TEST   := valgrind sqlite3 python3 python3-pytest python3-requests chromium runsc docker-registry
# make fuzz: clang and its libFuzzer runtime (bookworm's clang 14 leaves it to a Recommends).
DEB_FUZZ   := clang libclang-rt-14-dev

.PHONY: registry registry-down cluster-up cluster-down cluster-check cluster-test
.PHONY: all build run serve test unit unit-valgrind integration api sanitize bench bench-agent bench-cluster bench-preload bench-session bench-pool soak bench-hostile bench-history bench-history-load lint clean \
        deps test-deps engine base-image check-engine ui e2e node-deps apt-node \
        fuzz fuzz-deps apt-fuzz fuzz-bins fuzz-replay fuzz-replay-run fuzz-merge

all: build
build: $(BIN) $(TLS_SHIM)

$(BIN): $(BUILD)/cli/main.o $(BUILD)/libenvhub.a
	$(CC) $(SAN) -o $@ $^ $(LIBS)

# Loaded by envhub at run time when it serves HTTPS (see web/tls_compat.c).
$(TLS_SHIM): web/tls_compat.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 $(WARNINGS) $(CFLAGS) -shared -fPIC -Wl,-soname,libssl.so -o $@ $< -lssl

$(BUILD)/libenvhub.a: $(LIB_OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/gen/migrations_embedded.c: $(MIGRATIONS) core/embed.sh
	@mkdir -p $(dir $@)
	sh core/embed.sh migrations_embedded $@ $(MIGRATIONS)

# The executor's in-container wrapper script, its matplotlib backend, its agent.
$(BUILD)/gen/executor_embedded.c: executor/wrapper.sh executor/display.py executor/agent.py core/embed.sh
	@mkdir -p $(dir $@)
	sh core/embed.sh executor_embedded $@ executor/wrapper.sh executor/display.py executor/agent.py

ui: $(BUILD)/gen/ui_embedded.c $(BUILD)/gen/templates_embedded.c

$(UI_STAMP): $(UI_VENDOR_DIR)/package.json $(UI_VENDOR_DIR)/package-lock.json
	@command -v npm >/dev/null || { echo "ui: npm is missing (make deps installs it)" >&2; exit 1; }
	cd $(UI_VENDOR_DIR) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(filter $(UI_NODE)/%,$(UI_VENDOR)): $(UI_STAMP)

# ReDoc's sidebar shows a logo from its CDN: point it at nothing (the image hides itself
# when it cannot load), so that the page asks nothing of the network.
$(BUILD)/ui/redoc.standalone.js: $(UI_STAMP)
	@mkdir -p $(dir $@)
	sed 's#https://cdn.redoc.ly/redoc/logo-mini.svg#data:,#g' $(UI_NODE)/redoc/bundles/redoc.standalone.js > $@.tmp
	@! grep -q 'cdn.redoc.ly' $@.tmp || { echo "ui: redoc.standalone.js still names its CDN" >&2; exit 1; }
	mv $@.tmp $@

# The code editor: CodeMirror 6 and its Python mode in one ES module, /ui/editor.js.
$(BUILD)/ui/editor.js: $(UI_VENDOR_DIR)/editor-entry.mjs $(UI_STAMP)
	@mkdir -p $(dir $@)
	cd $(UI_VENDOR_DIR) && ./node_modules/.bin/esbuild editor-entry.mjs --bundle --format=esm --minify \
	    --legal-comments=eof --log-level=warning --outfile=$(abspath $@)

$(BUILD)/gen/ui_embedded.c: $(UI_OWN) $(UI_VENDOR) core/embed.sh
	@mkdir -p $(dir $@)
	sh core/embed.sh ui_embedded $@ $(UI_OWN) $(UI_VENDOR)

$(BUILD)/gen/templates_embedded.c: $(TEMPLATES) core/embed.sh
	@mkdir -p $(dir $@)
	sh core/embed.sh templates_embedded $@ $(TEMPLATES)

$(BUILD)/gen/%.o: $(BUILD)/gen/%.c
	$(CC) $(ALL_CFLAGS) -Wno-missing-prototypes -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libenvhub.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libenvhub.a $(LIBS) -lcmocka

$(BUILD)/tests/%: tests/integration/%.c $(BUILD)/libenvhub.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libenvhub.a $(LIBS) -lcmocka

# A harness with the replay main, or (make fuzz, CC=clang) with libFuzzer's.
$(BUILD)/fuzz/fuzz_%: $(BUILD)/tests/fuzz/fuzz_%.o $(BUILD)/tests/fuzz/fuzz_main.o $(BUILD)/libenvhub.a
	@mkdir -p $(dir $@)
	$(CC) $(SAN) -o $@ $^ $(LIBS)

$(BUILD)/fuzzer/fuzz_%: $(BUILD)/tests/fuzz/fuzz_%.o $(BUILD)/libenvhub.a
	@mkdir -p $(dir $@)
	$(CC) $(SAN) -fsanitize=fuzzer -o $@ $^ $(LIBS)

.SECONDARY: $(FUZZ_TARGETS:%=$(BUILD)/tests/fuzz/fuzz_%.o) $(BUILD)/tests/fuzz/fuzz_main.o

# tests/bench/seed_history.c: fills a catalog through the catalog API (bench-history, API tests).
SEED_BIN   := $(BUILD)/bench/seed_history
$(BUILD)/bench/%: tests/bench/%.c $(BUILD)/libenvhub.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libenvhub.a $(LIBS)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# ---- set-up: packages, engine, base image ----

# Installs only what is missing; needs root (or sudo) for apt-get.
define apt_install
	@missing=""; for p in $(1); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	    echo "deps: installing$$missing"; \
	    if [ "$$(id -u)" -eq 0 ]; then SUDO=; elif command -v sudo >/dev/null; then SUDO=sudo; \
	    else echo "deps: missing Debian packages:$$missing; install them as root" >&2; exit 1; fi; \
	    $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	    $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null \
	    || { echo "deps: apt-get install$$missing failed" >&2; exit 1; }; \
	fi
endef

deps: node-deps
	$(call apt_install,$(DEB_BUILD))

# Node.js and npm fetch the UI's vendored bundles and run the browser tests;
# Debian's packages only where no node is installed already.
node-deps:
	@if ! command -v node >/dev/null || ! command -v npm >/dev/null; then \
	    $(MAKE) --no-print-directory apt-node; fi

apt-node:
	$(call apt_install,nodejs npm)

test-deps: deps
	$(call apt_install,$(DEB_TEST))

# Start dockerd when its socket does not answer (root only); its log goes to $(STATE)/dockerd.log.
engine: deps
	@mkdir -p $(STATE)
	@if curl -sf --max-time 5 --unix-socket $(SOCKET) http://localhost/_ping >/dev/null 2>&1; then \
	    echo "engine: the Docker engine answers on $(SOCKET)"; \
	elif [ "$$(id -u)" -ne 0 ]; then \
	    echo "engine: no Docker engine answers on $(SOCKET); start it (sudo dockerd &) or run make as root" >&2; exit 1; \
	else \
	    echo "engine: starting dockerd (log: $(STATE)/dockerd.log)"; \
	    nohup dockerd >$(STATE)/dockerd.log 2>&1 </dev/null & \
	    for i in $$(seq 1 60); do \
	        curl -sf --max-time 2 --unix-socket $(SOCKET) http://localhost/_ping >/dev/null 2>&1 && { echo "engine: ready after $${i}s"; exit 0; }; \
	        sleep 1; \
	    done; \
	    echo "engine: dockerd did not answer within 60 s; the end of $(STATE)/dockerd.log:" >&2; tail -20 $(STATE)/dockerd.log >&2; exit 1; \
	fi
	@# gVisor, when Debian's runsc is installed (make test-deps installs it): the runtime
	@# environments' policies may ask for ({"runtime": "runsc"})
	@if command -v runsc >/dev/null && [ "$$(id -u)" -eq 0 ]; then \
	    SOCKET=$(SOCKET) bash engine/register-runsc.sh; fi

# Debian's docker-registry on 127.0.0.1:5000 (REGISTRY_ADDR) for ENVHUB_REGISTRY;
# its data stays in $(STATE)/registry.
registry: test-deps
	@STATE=$(STATE) bash engine/registry.sh up

registry-down:
	@STATE=$(STATE) bash engine/registry.sh down

# A Docker Swarm of three engines on this machine, all on loopback, with the
# registry (engine/cluster.sh says what each step does); cluster-down undoes
# every part of it, also after a failed cluster-up.
cluster-up: test-deps engine base-image $(BIN)
	$(call apt_install,iproute2)
	@STATE=$(STATE) SOCKET=$(SOCKET) IMAGE=$(IMAGE) BIN=$(BIN) CLUSTER_PORT=$(CLUSTER_PORT) \
	    bash engine/cluster.sh up

cluster-down:
	@STATE=$(STATE) SOCKET=$(SOCKET) BIN=$(BIN) bash engine/cluster.sh down

cluster-check:
	@STATE=$(STATE) SOCKET=$(SOCKET) IMAGE=$(IMAGE) bash engine/cluster.sh check

# envhub's cluster mode on the three engines of cluster-up: jobs spread over them, a
# version built on the manager runs on each, an engine killed under 20 jobs
# (tests/api/test_cluster_engines.py); the cluster goes down afterwards, also on a failure.
CLUSTER_PORT ?= 8100
cluster-test: $(BIN)
	@trap '$(MAKE) --no-print-directory -C $(CURDIR) cluster-down' EXIT; \
	$(MAKE) --no-print-directory cluster-up CLUSTER_PORT=$(CLUSTER_PORT) && \
	cd tests/api && ENVHUB_CLUSTER_URL=http://127.0.0.1:$(CLUSTER_PORT) \
	    ENVHUB_CLUSTER_STATE=$(abspath $(STATE)) $(PYTHON) -m pytest -q -s -p no:cacheprovider \
	    test_cluster_engines.py

# The default image, bootstrapped from the Debian mirror when it is not in the engine.
base-image: engine $(BIN)
	@if $(BIN) image exists $(IMAGE); then \
	    echo "base-image: $(IMAGE) is present"; \
	else \
	    echo "base-image: building $(IMAGE) with debootstrap (about a minute, once)"; \
	    mkdir -p $(STATE) && \
	    bash environments/bootstrap-base.sh $(STATE)/base-rootfs.tar bookworm && \
	    $(BIN) image import $(IMAGE) $(STATE)/base-rootfs.tar && rm -f $(STATE)/base-rootfs.tar; \
	fi

run: deps engine build base-image
	@mkdir -p $(STATE)
	ENVHUB_DB=$${ENVHUB_DB:-$(STATE)/envhub.db} $(BIN) migrate
	ENVHUB_DB=$${ENVHUB_DB:-$(STATE)/envhub.db} exec $(BIN) serve

# ---- tests ----

test: test-deps engine build base-image
	$(MAKE) unit unit-valgrind
	$(MAKE) fuzz-replay
	$(MAKE) integration
	$(MAKE) api
	$(MAKE) e2e

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

# Every committed fuzz input once, under ASan + UBSan (build-san/): seconds.
fuzz-replay:
	$(MAKE) --no-print-directory SANITIZE=address,undefined fuzz-replay-run

fuzz-replay-run: $(FUZZ_REPLAY)
	@set -e; for t in $(FUZZ_TARGETS); do $(BUILD)/fuzz/fuzz_$$t tests/fuzz/corpus/$$t; done

unit-valgrind: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== valgrind $$t"; \
	    valgrind -q --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite,indirect $$t >/dev/null; done

integration: $(INTEG_BIN)
	@set -e; for t in $(INTEG_BIN); do echo "== $$t"; CI=$${CI:-true} $$t; done

api: $(BIN) $(SEED_BIN)
	cd tests/api && ENVHUB_BIN=$(abspath $(BIN)) $(PYTHON) -m pytest -q -x -p no:cacheprovider .

# The acceptance tests of /execute and of environments, unchanged, against a server in
# cluster mode whose jobs run on 3 nodes (envhub node processes on this engine).
api-cluster: $(BIN)
	cd tests/api && ENVHUB_BIN=$(abspath $(BIN)) ENVHUB_TEST_CLUSTER=3 $(PYTHON) -m pytest -q \
	    -p no:cacheprovider test_execute.py test_environments.py test_seed_client.py test_files.py

# The UI in Debian's chromium, driven by playwright-core (pinned in tests/e2e; it never
# downloads a browser), against a real envhub; screenshots land in tests/e2e/screenshots/.
$(E2E_STAMP): $(E2E_DIR)/package.json $(E2E_DIR)/package-lock.json
	cd $(E2E_DIR) && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error
	@touch $@

e2e: $(BIN) $(E2E_STAMP)
	@test -x $(CHROMIUM) || { echo "e2e: no chromium at $(CHROMIUM) (make test-deps installs it)" >&2; exit 1; }
	cd $(E2E_DIR) && ENVHUB_BIN=$(abspath $(BIN)) CHROMIUM=$(CHROMIUM) node --test *.test.mjs

sanitize: test-deps engine base-image
	$(MAKE) SANITIZE=address,undefined build unit fuzz-replay-run integration
	$(MAKE) SANITIZE=address,undefined api e2e

bench: test-deps engine build base-image
	ENVHUB_BIN=$(abspath $(BIN)) $(PYTHON) tests/bench/bench_execute.py
	ENVHUB_BIN=$(abspath $(BIN)) $(PYTHON) tests/bench/bench_agent.py
	ENVHUB_BIN=$(abspath $(BIN)) $(PYTHON) tests/bench/bench_hostile.py
	ENVHUB_BIN=$(abspath $(BIN)) $(PYTHON) tests/bench/bench_gvisor.py
	ENVHUB_BIN=$(abspath $(BIN)) $(PYTHON) tests/bench/bench_pool.py
	ENVHUB_BIN=$(abspath $(BIN)) $(PYTHON) tests/bench/bench_preload.py
	ENVHUB_BIN=$(abspath $(BIN)) $(PYTHON) tests/bench/bench_session.py

# /health and /execute beside 200 trickling connections and 60 uploaders of 50 MB bodies.
# The agent transport against the exec one and the raw baselines (issue 14).
bench-agent: test-deps engine build base-image
	ENVHUB_BIN=$(abspath $(BIN)) $(PYTHON) tests/bench/bench_agent.py

# Cluster mode (three nodes on this engine) against one engine: warm p50, overhead, CPU.
bench-cluster: test-deps engine build base-image
	ENVHUB_BIN=$(abspath $(BIN)) $(PYTHON) tests/bench/bench_cluster.py

# 30 minutes of the mixed load at c=10 (SOAK_MINUTES, SOAK_CLIENTS): per-minute figures.
soak: test-deps engine build base-image
	ENVHUB_BIN=$(abspath $(BIN)) $(PYTHON) tests/bench/soak.py

bench-session: test-deps engine build base-image
	ENVHUB_BIN=$(abspath $(BIN)) $(PYTHON) tests/bench/bench_session.py

bench-preload: test-deps engine build base-image
	ENVHUB_BIN=$(abspath $(BIN)) $(PYTHON) tests/bench/bench_preload.py

bench-pool: test-deps engine build base-image
	ENVHUB_BIN=$(abspath $(BIN)) $(PYTHON) tests/bench/bench_pool.py

bench-hostile: test-deps engine build base-image
	ENVHUB_BIN=$(abspath $(BIN)) $(PYTHON) tests/bench/bench_hostile.py

# 1,000,000 seeded executions, then the history API's latencies, export and verify rates.
bench-history: test-deps engine build $(SEED_BIN)
	ENVHUB_BIN=$(abspath $(BIN)) SEED_BIN=$(abspath $(SEED_BIN)) $(PYTHON) tests/bench/bench_history.py

# /health and /execute beside four clients looping full-text searches over 1,000,000 rows.
bench-history-load: test-deps engine build base-image $(SEED_BIN)
	ENVHUB_BIN=$(abspath $(BIN)) SEED_BIN=$(abspath $(SEED_BIN)) $(PYTHON) tests/bench/bench_history_load.py

# ---- fuzzing ----

fuzz-deps:
	@if [ "$(FUZZ_CC)" = clang ]; then $(MAKE) --no-print-directory apt-fuzz; fi

apt-fuzz:
	$(call apt_install,$(DEB_FUZZ))

fuzz-bins: $(FUZZ_BINS)

# Each harness for FUZZ_SECONDS on a copy of its corpus (build-fuzz/corpus/<target>/, kept
# between runs); fails when any found a crash, a leak, a UBSan report or a hang (-timeout).
fuzz: fuzz-deps
	$(MAKE) --no-print-directory CC=$(FUZZ_CC) BUILD=$(FUZZ_DIR) SAN="$(FUZZ_SAN)" fuzz-bins
	@failed=""; for t in $(FUZZ_TARGETS); do \
	    corpus=$(FUZZ_DIR)/corpus/$$t; crashes=$(FUZZ_DIR)/crashes/$$t; log=$(FUZZ_DIR)/logs/$$t.log; \
	    mkdir -p $$corpus $$crashes $(FUZZ_DIR)/logs; cp tests/fuzz/corpus/$$t/* $$corpus/; \
	    echo "== fuzz_$$t: $(FUZZ_SECONDS) s (log: $$log)"; \
	    $(FUZZ_DIR)/fuzzer/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1 \
	        -artifact_prefix=$$crashes/ $$corpus >$$log 2>&1 || { failed="$$failed $$t"; tail -40 $$log; }; \
	    printf 'fuzz_%s: %s exec/s, %s runs; corpus %s files, %s bytes (in memory: %s)\n' $$t \
	        "$$(sed -n 's/^stat::average_exec_per_sec: *//p' $$log)" \
	        "$$(sed -n 's/^stat::number_of_executed_units: *//p' $$log)" \
	        "$$(find $$corpus -type f | wc -l)" "$$(find $$corpus -type f -printf '%s\n' | awk '{s += $$1} END {print s + 0}')" \
	        "$$(grep -o 'corp: [0-9]*/[0-9]*[a-zA-Z]*' $$log | tail -1 | cut -c7-)"; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: failed:$$failed (inputs in $(FUZZ_DIR)/crashes/)" >&2; exit 1; fi

# What the fuzz runs found that reaches code the committed corpus does not: into it.
fuzz-merge:
	$(MAKE) --no-print-directory CC=$(FUZZ_CC) BUILD=$(FUZZ_DIR) SAN="$(FUZZ_SAN)" fuzz-bins
	@set -e; mkdir -p $(FUZZ_DIR)/logs; for t in $(FUZZ_TARGETS); do \
	    mkdir -p $(FUZZ_DIR)/corpus/$$t; log=$(FUZZ_DIR)/logs/merge-$$t.log; \
	    $(FUZZ_DIR)/fuzzer/fuzz_$$t -merge=1 tests/fuzz/corpus/$$t $(FUZZ_DIR)/corpus/$$t >$$log 2>&1 \
	        || { tail -20 $$log; exit 1; }; \
	    echo "fuzz_$$t: $$(grep -m1 'MERGE-OUTER: [0-9]* new files' $$log)"; done

lint:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')
	@for h in $$(git ls-files '*.h'); do \
	    echo "#include \"$$h\"" | $(CC) $(filter-out -MMD -MP,$(ALL_CFLAGS)) -x c -fsyntax-only - || exit 1; done
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability --inline-suppr --suppress=unknownMacro -I. $(MODULES)

clean:
	rm -rf build build-san $(FUZZ_DIR)
