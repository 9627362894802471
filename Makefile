# Thin wrapper over CMake. `make demo` and `make test` work on a fresh Debian 12.
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
JOBS       ?= $(shell nproc)
FUZZ_SECONDS ?= 30
SUDO       := $(if $(filter 0,$(shell id -u)),,sudo)

DEB_PACKAGES := build-essential cmake pkg-config clang clang-format valgrind \
	libssl-dev openssl libfabric-dev libfabric-bin librdmacm-dev libibverbs-dev \
	rdma-core ibverbs-providers ibverbs-utils rdmacm-utils perftest iproute2 \
	qemu-system-x86 busybox-static cpio gnuplot-nox procps psmisc python3 iputils-ping \
	curl prometheus

.PHONY: all deps build test unit asan fuzz format format-check integration vm \
	valgrind demo bench stress clean install

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
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null

build: deps $(BUILD)/Makefile
	cmake --build $(BUILD) -j$(JOBS)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	@bad=$$(for f in $$(git ls-files '*.c' '*.h'); do \
		clang-format --dry-run -Werror $$f >/dev/null 2>&1 || echo $$f; done); \
	if [ -n "$$bad" ]; then echo "clang-format drift (run 'make format'):"; echo "$$bad"; exit 1; fi; \
	echo "format-check: clean"

unit: build
	cd $(BUILD) && ctest -L unit --output-on-failure

asan: deps
	cmake -S . -B $(ASAN_BUILD) -DSRDMA_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
	cmake --build $(ASAN_BUILD) -j$(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		ctest --output-on-failure -E 't_valgrind|t_netns|t_bench|t_churn|t_stress|t_install'

fuzz: deps
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DSRDMA_FUZZ=ON -DBUILD_TESTING=OFF -DCMAKE_BUILD_TYPE=Debug >/dev/null
	cmake --build $(FUZZ_BUILD) -j$(JOBS) --target fuzzers
	FUZZ_SECONDS=$(FUZZ_SECONDS) bash tests/fuzz/run.sh $(FUZZ_BUILD)

integration: build
	cd $(BUILD) && ctest -L integration --output-on-failure

vm: build
	bash tests/vm/run.sh $(BUILD)
	bash tests/vm/two-hosts.sh $(BUILD)

# The whole suite: style, unit (plain and sanitized), fuzz, integration
# (includes the valgrind leak check), and the Soft-RoCE VM.
test: deps format-check build
	cd $(BUILD) && ctest --output-on-failure
	$(MAKE) --no-print-directory asan
	$(MAKE) --no-print-directory fuzz
	$(MAKE) --no-print-directory vm

demo: build
	./$(BUILD)/srdma demo

bench: build
	bash bench/run.sh $(BUILD)

stress: build
	bash tests/stress/run.sh $(BUILD)

install: build
	cmake --install $(BUILD)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
