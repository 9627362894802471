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
 *
 *   pki_issue DIR --crl OUT [--revoke NAME]... [--last S] [--next S]
 *
 * writes a CRL signed by the CA to OUT revoking DIR/NAME.crt of each NAME
 * (none: an empty CRL); --last/--next: lastUpdate/nextUpdate = now +
 * SECONDS (defaults -60 and 7 days; a negative --next makes it expired).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pki.h"

enum { MAX_SANS = 16 };

static int crl(int argc, char **argv)
{
	const char *revoke[MAX_SANS + 1] = {0};
	long last = -60, next = 0;
	int n = 0;

	for (int i = 4; i < argc; i++) {
		if (!strcmp(argv[i], "--revoke") && i + 1 < argc &&
		    n < MAX_SANS) {
			revoke[n++] = argv[++i];
		} else if (!strcmp(argv[i], "--last") && i + 1 < argc) {
			last = strtol(argv[++i], NULL, 10);
		} else if (!strcmp(argv[i], "--next") && i + 1 < argc) {
			next = strtol(argv[++i], NULL, 10);
		} else {
			fprintf(stderr, "pki_issue: bad option '%s'\n",
				argv[i]);
			return 2;
		}
	}
	if (pki_crl(argv[1], argv[3], revoke, last, next) < 0) {
		fprintf(stderr, "pki_issue: %s\n", pki_error());
		return 1;
	}
	return 0;
}

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
	if (argc >= 4 && !strcmp(argv[2], "--crl"))
		return crl(argc, argv);
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
