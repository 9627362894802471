# Fallback: the project's verbs unit test, when no earlier section ran it
# (20-verbs-unit.sh normally does, with more checks on its output).
if [ -f "$OUT/verbs-unit.out" ]; then
	echo "# test_verbs already run by 20-verbs-unit"
elif have test_verbs; then
	f=$(outfile test_verbs)
	SRDMA_TEST_ADDR=$VM_IP timeout 300 test_verbs >"$f" 2>&1
	rc=$?
	if [ $rc -eq 0 ]; then
		ok "test_verbs"
	else
		notok "test_verbs" "exit $rc"
		show_tail "$f" 60
	fi
else
	skip "test_verbs" "not in the build dir"
fi
