# The project's verbs transport unit test, when the build dir has one.
if have test_verbs; then
	f=$(outfile test_verbs)
	timeout 300 test_verbs >"$f" 2>&1
	rc=$?
	sed 's/^/#   /' "$f"
	if [ $rc -eq 0 ]; then
		ok "test_verbs"
	else
		notok "test_verbs" "exit $rc"
	fi
else
	skip "test_verbs" "not in the build dir"
fi
