#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Runs every libFuzzer target BUILD_DIR/fuzz_* for FUZZ_SECONDS (default 30)
# each, starting from its seed corpus tests/fuzz/corpus/<name>/ (copied to a
# scratch directory, so the repository is never modified; a target without
# a corpus directory starts empty). Fails if any target crashes.
#
#   cmake -B build-fuzz -DCMAKE_C_COMPILER=clang -DSRDMA_FUZZ=ON && \
#     cmake --build build-fuzz && tests/fuzz/run.sh build-fuzz
#
# Extra libFuzzer flags can be passed in FUZZ_ARGS (e.g. "-max_len=8192").
set -u

usage() {
	echo "usage: $0 BUILD_DIR   (env: FUZZ_SECONDS, FUZZ_ARGS)" >&2
	exit 2
}
[[ $# -eq 1 && -d $1 ]] || usage
build=$1
secs=${FUZZ_SECONDS:-30}
[[ $secs =~ ^[0-9]+$ && $secs -gt 0 ]] || {
	echo "FUZZ_SECONDS must be a positive number of seconds" >&2
	exit 2
}
corpus_root=$(cd "$(dirname "$0")" && pwd)/corpus

targets=()
for f in "$build"/fuzz_*; do
	[[ -f $f && -x $f ]] && targets+=("$f")
done

if [[ ${#targets[@]} -eq 0 ]]; then
	# Say why: no clang/libFuzzer at all, or just not configured for it.
	probe=$(mktemp -d)
	printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n)\n{ return 0; }\n' >"$probe/p.c"
	cc=${CC:-clang}
	if ! command -v "$cc" >/dev/null 2>&1 ||
		! "$cc" -fsanitize=fuzzer "$probe/p.c" -o "$probe/p" >/dev/null 2>&1; then
		echo "fuzz: clang's libFuzzer is unavailable ('$cc -fsanitize=fuzzer' fails):" \
			"install clang (Debian: apt-get install clang) and rebuild with" \
			"-DCMAKE_C_COMPILER=clang -DSRDMA_FUZZ=ON" >&2
	else
		echo "fuzz: no fuzz_* executables in $build: configure it with" \
			"-DCMAKE_C_COMPILER=clang -DSRDMA_FUZZ=ON and build" >&2
	fi
	rm -rf "$probe"
	exit 1
fi

# Recoverable UBSan reports must stop the run, or libFuzzer never sees them.
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}

passed=0
failed=0
for t in "${targets[@]}"; do
	name=$(basename "$t")
	work=$(mktemp -d "${TMPDIR:-/tmp}/srdma-fuzz-$name.XXXXXX")
	mkdir -p "$work/corpus" "$work/artifacts"
	if [[ -d $corpus_root/$name ]]; then
		cp -R "$corpus_root/$name/." "$work/corpus/"
	fi

	# shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
	"$t" -max_total_time="$secs" -print_final_stats=1 -timeout=25 \
		-artifact_prefix="$work/artifacts/" ${FUZZ_ARGS:-} \
		"$work/corpus" >"$work/log" 2>&1
	rc=$?

	execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$work/log" | tail -n 1)
	cov=$(grep -o 'cov: [0-9]*' "$work/log" | tail -n 1 | awk '{print $2}')
	crashes=$(find "$work/artifacts" -type f | wc -l)

	if [[ $rc -eq 0 && $crashes -eq 0 && -n $execs ]]; then
		echo "fuzz $name: $execs execs, cov ${cov:-?}, ok"
		passed=$((passed + 1))
		rm -rf "$work"
		continue
	fi

	failed=$((failed + 1))
	if [[ -z $execs && $rc -eq 0 ]]; then
		why="printed no libFuzzer statistics (not a libFuzzer binary?)"
	else
		why="exit $rc, $crashes crash input(s) in $work/artifacts"
	fi
	echo "fuzz $name: ${execs:-?} execs, cov ${cov:-?}, FAILED: $why"
	echo "---- last lines of $work/log ----"
	tail -n 40 "$work/log"
	echo "----"
	echo "reproduce: $t $work/artifacts/<file>"
done

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
