#!/bin/bash
# srdma cp FILE HOST:PATH into srdma serve --dir (issue 19), over libfabric
# tcp: files of 0 B, 1 B, one block, a few MiB of odd sizes and 300 MiB,
# each compared byte for byte, in all three protection modes; a copy
# killed halfway and resumed; a source changed before the resume refused
# (and --restart); paths that try to leave DIR refused with nothing
# written outside it; no such directory; two copies to one path; a server
# without --dir. (The full file system: t_cp_full.sh.)
. "$(dirname "$0")/lib.sh"
make_pki "$T/pki" client
mkdir -p "$T/dir/sub" "$T/src" "$T/outside"
start_server s --certs "$T/pki" --transport ofi --protect none \
	--dir "$T/dir" || exit 1
cpy() {
	timeout 120 "$SRDMA" cp --certs "$T/pki" --transport ofi \
		--port "$CTRL_PORT" "$@"
}
# same FILE COPY: byte for byte, and no partial copy left beside it.
same() {
	cmp "$1" "$2" || return 1
	local part
	part="$(dirname "$2")/.$(basename "$2").srdma-part"
	[ ! -e "$part" ] || { echo "$part is left"; return 1; }
}
# part_size PATH: the partial copy's size (0 if none).
part_size() {
	local p
	p="$(dirname "$1")/.$(basename "$1").srdma-part"
	stat -c %s "$p" 2>/dev/null || echo 0
}

: >"$T/src/empty"
head -c 1 /dev/urandom >"$T/src/one"
head -c 4096 /dev/urandom >"$T/src/block"
head -c 1048577 /dev/urandom >"$T/src/odd1"
head -c 3000017 /dev/urandom >"$T/src/odd3"
head -c 5242879 /dev/urandom >"$T/src/odd5"
head -c 300M /dev/urandom >"$T/src/big"

for mode in encrypt integrity none; do
	for f in empty one block odd1 odd3 odd5; do
		check "$mode: $f copied" cpy --protect "$mode" "$T/src/$f" \
			"127.0.0.1:sub/$mode-$f" -q
		check "$mode: $f identical" same "$T/src/$f" \
			"$T/dir/sub/$mode-$f"
	done
	check "$mode: 300 MiB copied" cpy --protect "$mode" "$T/src/big" \
		"127.0.0.1:$mode-big" >"$T/big-$mode.out" 2>&1
	check "$mode: 300 MiB identical" same "$T/src/big" "$T/dir/$mode-big"
	check "$mode: the last line names the mode and the hash" grep -q \
		"SHA-256 [0-9a-f]\{64\} verified; ofi/tcp, $mode" \
		"$T/big-$mode.out"
	rm -f "$T/dir/$mode-big"
done
check "plain progress lines without a terminal" \
	grep -q "big: [0-9]*% (.* of 300.0 MiB), .* MB/s, .* left" \
	"$T/big-encrypt.out"
check "a copy over an existing file replaces it (and --fsync)" \
	cpy --fsync "$T/src/odd1" 127.0.0.1:sub/encrypt-one -q
check "... identical" same "$T/src/odd1" "$T/dir/sub/encrypt-one"

# ---- killed halfway, resumed ----
# interrupt DEST: a rate-limited copy killed once its partial copy holds
# more than 20 MiB (and less than all of it).
interrupt() {
	"$SRDMA" cp --certs "$T/pki" --transport ofi --port "$CTRL_PORT" \
		--bwlimit 40M "$T/src/big" "127.0.0.1:$1" >"$T/cut.out" 2>&1 &
	local pid=$! n=0
	for _ in $(seq 300); do
		n=$(part_size "$T/dir/$1")
		[ "$n" -gt $((20 << 20)) ] && break
		sleep 0.05
	done
	kill -9 "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	n=$(part_size "$T/dir/$1")
	echo "partial copy: $n bytes"
	[ "$n" -gt $((20 << 20)) ] && [ "$n" -lt $((300 << 20)) ]
}
# wait_cut NAME: the server saw the copy to NAME cut off (and unlocked it).
wait_cut() {
	for _ in $(seq 100); do
		grep -q "'$1': cut off after" "$T/s.log" && return 0
		sleep 0.05
	done
	echo "the server did not log the cut of '$1'"
	return 1
}
check "a copy killed halfway leaves its partial copy" interrupt resumed
check "the server logged the cut" wait_cut resumed
cpy "$T/src/big" 127.0.0.1:resumed >"$T/resume.out" 2>&1
check "the copy resumes (rc=$?)" grep -q "resuming .*/big at [0-9.]* MiB ([0-9]* bytes)" \
	"$T/resume.out"
check "... and says so in its last line" grep -q " resumed in " \
	"$T/resume.out"
check "the resumed copy is identical" same "$T/src/big" "$T/dir/resumed"

# ---- the source changed before the resume ----
check "another copy cut halfway" interrupt changed
check "... logged" wait_cut changed
cp "$T/src/big" "$T/src/big2"
printf 'X' | dd of="$T/src/big2" bs=1 seek=1000 conv=notrunc 2>/dev/null
check "a changed source is refused with a sentence" expect_fail \
	"big2 changed since the interrupted copy: its first [0-9]+ bytes differ .*--restart" \
	cpy "$T/src/big2" 127.0.0.1:changed
check "... and the partial copy is kept" \
	[ "$(part_size "$T/dir/changed")" -gt 0 ]
check "--restart copies it whole" cpy --restart "$T/src/big2" \
	127.0.0.1:changed -q
check "... identical" same "$T/src/big2" "$T/dir/changed"
rm -f "$T/src/big2" "$T/dir/resumed" "$T/dir/changed"

# ---- paths that try to leave DIR ----
ln -s "$T/outside" "$T/dir/escape"
ln -s "$T/outside/target" "$T/dir/final-link"
for p in ../x sub/../../x ./x sub//x sub/ "$T/outside/x" escape/x \
	final-link sub/x.srdma-part; do
	check "'$p' refused" expect_fail "refused: .*'" \
		cpy "$T/src/one" "127.0.0.1:$p"
done
check "'..' refused with a sentence" expect_fail \
	"refused: '../x' has an empty, '.' or '..' component: a path must stay inside the server's directory" \
	cpy "$T/src/one" 127.0.0.1:../x
check "an absolute path refused with a sentence" expect_fail \
	"refused: '/x' is an absolute path" cpy "$T/src/one" 127.0.0.1:/x
check "a symbolic link refused with a sentence" expect_fail \
	"refused: 'escape' is a symbolic link on the server" \
	cpy "$T/src/one" 127.0.0.1:escape/x
check "a symbolic link as the name refused with a sentence" expect_fail \
	"refused: 'final-link' is a symbolic link on the server" \
	cpy "$T/src/one" 127.0.0.1:final-link
check "nothing was written outside DIR" \
	[ -z "$(ls -A "$T/outside")" ]
check "no such directory: a sentence" expect_fail \
	"refused: no such directory 'nodir' under the server's directory" \
	cpy "$T/src/one" 127.0.0.1:nodir/deeper/x
check "... and nothing was made on the way" [ ! -e "$T/dir/nodir" ]
mkdir "$T/dir/sub/d"
check "no such directory further down: a sentence" expect_fail \
	"refused: no such directory 'sub/d/e' under the server's directory" \
	cpy "$T/src/one" 127.0.0.1:sub/d/e/x
check "a directory is not overwritten" expect_fail \
	"refused: 'sub' exists on the server and is not a regular file" \
	cpy "$T/src/one" 127.0.0.1:sub

# ---- two copies to one path ----
"$SRDMA" cp --certs "$T/pki" --transport ofi --port "$CTRL_PORT" \
	--bwlimit 20M "$T/src/big" 127.0.0.1:busy >"$T/busy.out" 2>&1 &
busy=$!
for _ in $(seq 100); do
	[ "$(part_size "$T/dir/busy")" -gt 0 ] && break
	sleep 0.05
done
check "a second copy to the same path is refused" expect_fail \
	"refused: another copy to 'busy' is in progress" \
	cpy "$T/src/one" 127.0.0.1:busy
kill -9 "$busy" 2>/dev/null
wait "$busy" 2>/dev/null

check "server alive" server_alive
check "orderly shutdown" stop_server

# ---- a server without --dir ----
start_server n --certs "$T/pki" --transport ofi || exit 1
check "a server without --dir refuses with a sentence" expect_fail \
	"refused: this server stores no files \(start srdma serve with --dir DIR\)" \
	cpy "$T/src/one" 127.0.0.1:x
check "no --dir: orderly shutdown" stop_server
check "a --dir that does not exist stops serve with a sentence" \
	expect_fail "srdma serve: --dir $T/nope: No such file or directory" \
	"$SRDMA" serve --listen 127.0.0.1:0 --certs "$T/pki" --dir "$T/nope"
finish
