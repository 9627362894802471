# Thin wrapper over CMake. `make demo` and `make test` work on a fresh Debian 12.
BUILD      ?= build
TEST_BUILD ?= build-test
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
MATRIX_BUILD ?= build-matrix
JOBS       ?= $(shell nproc)
FUZZ_SECONDS ?= 30
# Where `make install` puts things (bin/, lib/, include/, share/man/, ...).
PREFIX     ?= /usr/local
SUDO       := $(if $(filter 0,$(shell id -u)),,sudo)

DEB_PACKAGES := build-essential cmake pkg-config clang clang-format valgrind \
	libssl-dev openssl libfabric-dev libfabric-bin librdmacm-dev libibverbs-dev \
	rdma-core ibverbs-providers ibverbs-utils rdmacm-utils perftest iproute2 \
	qemu-system-x86 busybox-static cpio gnuplot-nox procps psmisc python3 iputils-ping \
	libipsec-mb-dev man-db groff-base \
	curl prometheus \
	openmpi-bin libopenmpi-dev netpipe-openmpi tcpdump

.PHONY: all deps build test-build test unit asan fuzz format format-check \
	integration vm valgrind demo bench stress clean install matrix mutants

# Warnings are fatal (-Werror, CMake's SRDMA_WERROR) in the test builds only:
# a packager's build with a newer compiler must not fail on a new warning.
# The test targets switch it on in $(BUILD); the others configure a fresh
# $(BUILD) without it and leave an existing one as it is, so `make demo`
# after `make test` rebuilds nothing. `make build WERROR=ON` asks for it.
WERROR ?=
test vm stress: WERROR = ON

all: build

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

$(BUILD)/Makefile: CMakeLists.txt
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		$(if $(WERROR),-DSRDMA_WERROR=$(WERROR)) >/dev/null

build: deps $(BUILD)/Makefile
	$(if $(WERROR),@grep -qx 'SRDMA_WERROR:BOOL=$(WERROR)' $(BUILD)/CMakeCache.txt || \
		cmake -S . -B $(BUILD) -DSRDMA_WERROR=$(WERROR) >/dev/null)
	cmake --build $(BUILD) -j$(JOBS)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	@bad=$$(for f in $$(git ls-files '*.c' '*.h'); do \
		clang-format --dry-run -Werror $$f >/dev/null 2>&1 || echo $$f; done); \
	if [ -n "$$bad" ]; then echo "clang-format drift (run 'make format'):"; echo "$$bad"; exit 1; fi; \
	echo "format-check: clean"

# The test build: the default build plus the hooks attack tests need
# (SRDMA_TEST_HOOKS: tampering, capture); never installed. The default
# build ($(BUILD)) is what ships; t_install checks it holds no hook.
test-build: deps
	cmake -S . -B $(TEST_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		-DSRDMA_TEST_HOOKS=ON -DSRDMA_WERROR=ON >/dev/null
	cmake --build $(TEST_BUILD) -j$(JOBS)

unit: test-build
	cd $(TEST_BUILD) && ctest -L unit --output-on-failure

asan: deps
	cmake -S . -B $(ASAN_BUILD) -DSRDMA_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug -DSRDMA_WERROR=ON \
		-DSRDMA_TEST_HOOKS=ON >/dev/null
	cmake --build $(ASAN_BUILD) -j$(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		ctest --output-on-failure -E 't_valgrind|t_netns|t_bench|t_churn|t_stress|t_install'

fuzz: deps
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DSRDMA_FUZZ=ON -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Debug \
		-DSRDMA_WERROR=ON >/dev/null
	cmake --build $(FUZZ_BUILD) -j$(JOBS) --target fuzzers
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash tests/fuzz/run.sh $(FUZZ_BUILD)

integration: build test-build
	cd $(TEST_BUILD) && SRDMA_RELEASE_BUILD=$(abspath $(BUILD)) \
		ctest -L integration --output-on-failure

# The library and the tool under every build type, with gcc and clang,
# warnings fatal (tests/matrix/run.sh).
matrix: deps
	JOBS=$(JOBS) bash tests/matrix/run.sh $(MATRIX_BUILD)

# The VM runs the default build, and the test build's srdma for its attack
# tests (VM_TEST_BUILD).
vm: build test-build
	VM_TEST_BUILD=$(abspath $(TEST_BUILD)) bash tests/vm/run.sh $(BUILD)
	bash tests/vm/two-hosts.sh $(BUILD)

# The whole suite: style, the build matrix, unit (plain and sanitized), fuzz,
# integration (includes the valgrind leak check), and the Soft-RoCE VM.
test: deps format-check matrix build test-build
	cd $(TEST_BUILD) && SRDMA_RELEASE_BUILD=$(abspath $(BUILD)) ctest --output-on-failure
	$(MAKE) --no-print-directory asan
	$(MAKE) --no-print-directory fuzz
	$(MAKE) --no-print-directory vm

# The mutation check (not in `make test`): each security check removed in
# turn (tests/mutants/mutants.py) must make a test fail. MUTANTS_ARGS: e.g.
# --vm (also the VM-only ones), --only ID,ID.
mutants: deps
	python3 tests/mutants/run.py $(MUTANTS_ARGS)

demo: build
	./$(BUILD)/srdma demo

bench: build
	bash bench/run.sh $(BUILD)

stress: build
	bash tests/stress/run.sh $(BUILD)

# The tool finds the library through its RUNPATH; programs built against
# a PREFIX the loader does not search link with -rpath (README). Under
# /usr/local and /usr, ldconfig makes the new library known (as root).
install: build
	cmake --install $(BUILD) --prefix $(PREFIX)
	@case "$(abspath $(PREFIX))" in /usr|/usr/local) \
		if [ "$$(id -u)" = 0 ]; then ldconfig; fi;; esac

clean:
	rm -rf $(BUILD) $(TEST_BUILD) $(ASAN_BUILD) $(FUZZ_BUILD) $(MATRIX_BUILD)
