#!/bin/bash
# Build matrix: the library (shared and static) and the tool under every
# build type a user or packager is likely to pick, with gcc and with clang,
# warnings fatal. Optimisation levels change which warnings GCC can see
# (GCC 12's -O3 found an unchecked result and a NULL path in wire.c that -O2
# did not), so each one is built, not only the one `make test` runs.
#
#   tests/matrix/run.sh [DIR]    (default build-matrix; JOBS, default nproc)
#
# Each build goes to DIR/<compiler>-<type> with its log beside it; one line
# per build; exits 1 if any failed.
set -uo pipefail
cd "$(dirname "$0")/../.."

out=${1:-build-matrix}
jobs=${JOBS:-$(nproc)}
targets=(srdma srdma_static srdma_tool)
# name:CMAKE_BUILD_TYPE:CMAKE_C_FLAGS. "-O3" uses the build type None, as
# Debian's packaging does, so no per-type flag (-O2 of RelWithDebInfo)
# follows and overrides it; it also keeps assertions, unlike Release.
types=("debug:Debug:" "relwithdebinfo:RelWithDebInfo:" "release:Release:"
	"O3:None:-O3")

mkdir -p "$out"
failed=0
total=0
start_all=$(date +%s)
for cc in gcc clang; do
	if ! command -v "$cc" >/dev/null; then
		echo "matrix: $cc not installed (make deps installs it)"
		total=$((total + ${#types[@]}))
		failed=$((failed + ${#types[@]}))
		continue
	fi
	for t in "${types[@]}"; do
		IFS=: read -r name type cflags <<<"$t"
		dir=$out/$cc-$name
		log=$dir.log
		total=$((total + 1))
		start=$(date +%s)
		if cmake -S . -B "$dir" -DCMAKE_C_COMPILER="$cc" \
			-DCMAKE_BUILD_TYPE="$type" -DCMAKE_C_FLAGS="$cflags" \
			-DSRDMA_WERROR=ON -DBUILD_TESTING=OFF >"$log" 2>&1 &&
			cmake --build "$dir" -j"$jobs" --target "${targets[@]}" \
				>>"$log" 2>&1; then
			printf 'matrix: %-6s %-15s %-4s ok      (%ds)\n' "$cc" \
				"$type" "$cflags" $(($(date +%s) - start))
		else
			printf 'matrix: %-6s %-15s %-4s FAILED  (%ds), log: %s\n' \
				"$cc" "$type" "$cflags" $(($(date +%s) - start)) "$log"
			grep -E 'error|warning' "$log" | head -20 | sed 's/^/    /'
			failed=$((failed + 1))
		fi
	done
done
echo "matrix: $((total - failed)) of $total builds ok in $(($(date +%s) - start_all))s"
[ "$failed" -eq 0 ]
