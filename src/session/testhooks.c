/* SPDX-License-Identifier: MIT */
/*
 * Hooks for attack tests. They exist only in a test build
 * (-DSRDMA_TEST_HOOKS=ON, which `make test` uses); the default build and
 * what `make install` installs have none (tests/integration/t_install.sh
 * checks the installed library for them).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "session/conn.h"

#ifdef SRDMA_TEST_HOOKS
/* SRDMA_TAMPER=send|write|read flips one bit of the first sealed record,
 * write chunk or read chunk, to prove the receiver catches it. */
bool srdma__tamper(const char *what)
{
	static int done;
	const char *t = secure_getenv("SRDMA_TAMPER");

	if (!t || done || strcmp(t, what))
		return false;
	done = 1;
	return true;
}

/* SRDMA_TEST_SAVE_PDATA=FILE keeps the client's connect private data so a
 * test can replay it (created new, never over an existing file). */
void srdma__test_save_pdata(const void *buf, size_t len)
{
	const char *path = secure_getenv("SRDMA_TEST_SAVE_PDATA");
	FILE *f;
	int fd;

	if (!path)
		return;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || !(f = fdopen(fd, "wb"))) {
		if (fd >= 0)
			close(fd);
		return;
	}
	fwrite(buf, 1, len, f);
	fclose(f);
}
#else
bool srdma__tamper(const char *what)
{
	(void)what;
	return false;
}

void srdma__test_save_pdata(const void *buf, size_t len)
{
	(void)buf, (void)len;
}
#endif
