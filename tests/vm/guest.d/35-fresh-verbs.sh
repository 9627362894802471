# Torn reads on Soft-RoCE (issue 13): rxe serves RDMA READs from the
# owner's memory without the owner, so reads really race with in-place
# puts here. One process puts whole versions into a granted read-only
# region of 8 blocks in a loop (every 32-bit word of put g is g); another
# reads the whole region for 10 s (torn_reads). No connection may fail,
# every block of every read must hold one whole version, no block may go
# back, one read must not mix versions across blocks (--strict: the reader
# learns each put in one UPDATE and reads again when the range changed
# under it), and reads must have been read again after racing the owner
# (read_retries > 0). A read that keeps racing asks the owner to hold its
# puts (docs/PROTOCOL.md §6 "Holds"), so the reader is not starved: at most
# one read in ten may end with SRDMA_EAGAIN (--want-progress; before holds,
# a CI run here completed 0 reads in 10 s: every attempt raced a put).
# The control: in mode none (no sealing) the same race must show blocks
# torn inside, so the race the sealed modes survive is real.
if have torn_reads && have srdma; then
	P=/tmp/vm-fresh
	rm -rf $P && mkdir -p $P
	check "fresh verbs: srdma certs" srdma certs $P/pki --name "$VM_IP"
	for m in encrypt integrity none; do
		if [ $m = none ]; then
			args="--secs 3 --count-torn"
		else
			args="--secs 10 --want-retries --strict --want-progress"
		fi
		rm -f $P/port
		timeout 60 torn_reads serve "$VM_IP" $P/port $P/pki \
			--device "$RDMA_DEV" --blocks 8 >$P/serve-$m.out 2>&1 &
		SPID=$!
		n=0
		while [ ! -s $P/port ] && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
		# shellcheck disable=SC2086
		timeout 60 torn_reads read "$VM_IP" "$(cat $P/port 2>/dev/null)" $P/pki \
			--device "$RDMA_DEV" --protect $m --blocks 8 $args >$P/read-$m.out 2>&1
		rc=$?
		if [ $m = none ]; then
			if [ $rc -eq 0 ] && grep -qE " torn [1-9][0-9]* " $P/read-$m.out; then
				ok "fresh verbs none (control): unsealed reads racing puts see torn blocks"
			else
				notok "fresh verbs none (control): unsealed reads racing puts see torn blocks" "exit $rc"
			fi
		elif [ $rc -eq 0 ]; then
			ok "fresh verbs $m: 10 s of reads racing puts, every read whole, retries > 0, not starved"
		else
			notok "fresh verbs $m: 10 s of reads racing puts" "exit $rc"
		fi
		if wait $SPID; then
			ok "fresh verbs $m: the owner's connection ended in order"
		else
			notok "fresh verbs $m: the owner's connection ended in order"
		fi
		sed 's/^/#   /' $P/read-$m.out $P/serve-$m.out
	done
else
	skip "fresh verbs: torn reads" "torn_reads or srdma not in the build dir"
fi
