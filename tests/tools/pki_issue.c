/* SPDX-License-Identifier: MIT */
/*
 * pki_issue: issues one more certificate from the CA of a `srdma certs`
 * directory, with a chosen validity window and names, so integration tests
 * can present expired, not-yet-valid and wrong-name certificates:
 *
 *   pki_issue DIR NAME [--server] [--san NAME]... [--nb SECONDS]
 *             [--na SECONDS]
 *
 * --nb: notBefore = now + SECONDS (negative = in the past);
 * --na: notAfter = now + SECONDS (0 = the default validity).
 * Writes DIR/NAME.crt and DIR/NAME.key. Exits 0 on success.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pki.h"

enum { MAX_SANS = 16 };

int main(int argc, char **argv)
{
	const char *sans[MAX_SANS + 1] = {0};
	long nb = -3600, na = 0;
	bool server = false;
	int nsans = 0, rc;

	if (argc < 3) {
		fprintf(stderr, "usage: pki_issue DIR NAME [--server] "
				"[--san NAME]... [--nb S] [--na S]\n");
		return 2;
	}
	for (int i = 3; i < argc; i++) {
		if (!strcmp(argv[i], "--server")) {
			server = true;
		} else if (!strcmp(argv[i], "--san") && i + 1 < argc &&
			   nsans < MAX_SANS) {
			sans[nsans++] = argv[++i];
		} else if (!strcmp(argv[i], "--nb") && i + 1 < argc) {
			nb = strtol(argv[++i], NULL, 10);
		} else if (!strcmp(argv[i], "--na") && i + 1 < argc) {
			na = strtol(argv[++i], NULL, 10);
		} else {
			fprintf(stderr, "pki_issue: bad option '%s'\n",
				argv[i]);
			return 2;
		}
	}
	rc = pki_issue(argv[1], argv[2], server, nsans ? sans : NULL, nb, na);
	if (rc < 0) {
		fprintf(stderr, "pki_issue: %s\n", pki_error());
		return 1;
	}
	return 0;
}
