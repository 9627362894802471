/* SPDX-License-Identifier: MIT */
/* A throwaway PKI for the session-level unit tests (include after test.h). */
#ifndef SRDMA_TEST_PKI_H
#define SRDMA_TEST_PKI_H

#include <stdlib.h>
#include <sys/stat.h>

#include "ctrl/ctrl.h"
#include "pki.h"

/*
 * Makes $SRDMA_TEST_TMP (or /tmp)/NAME.XXXXXX in dir[len] and writes a CA,
 * a server certificate (with server_name as an extra SAN if not NULL) and
 * the default client into it. Returns 0, or -1 after saying why.
 */
static inline int test_pki_make(char *dir, size_t len, const char *name,
				const char *server_name)
{
	const char *base = getenv("SRDMA_TEST_TMP");
	const char *names[2] = {server_name, NULL};
	struct pki_opts po = {0};
	int rc;

	if (!base)
		base = "/tmp";
	mkdir(base, 0700);
	snprintf(dir, len, "%s/%s.XXXXXX", base, name);
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return -1;
	}
	po.dir = dir;
	po.force = true;
	po.server_names = server_name ? names : NULL;
	rc = pki_write(&po);
	CHECK_PKI(rc, 0);
	return rc;
}

static inline void test_pki_remove(const char *dir)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

#endif
