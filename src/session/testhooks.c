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

/* ---- a hostile peer on a connection of its own ---- */

int srdma__test_send_record(struct srdma_conn *c, uint8_t type,
			    const void *body, size_t len)
{
	ENSURE(c && c->state == ST_ESTABLISHED, SRDMA_ESTATE,
	       "test: the connection is not established");
	ENSURE(len <= c->max_msg, SRDMA_EMSGSIZE, "test: record too large");
	ENSURE(srdma__can_post(c, type), SRDMA_EAGAIN, "test: window full");
	return srdma__post_record(c, type, body, len);
}

/* One raw RDMA operation with the peer's granted key, run to completion. */
static int raw_rdma(struct srdma_conn *c, bool write, uint32_t region,
		    uint64_t off, void *buf, size_t len, int timeout_ms)
{
	const struct srdma__tp_ops *ops;
	struct remote_region *rr;
	struct srdma__tp_mr *mr = NULL;
	uint64_t dl;
	int rc;

	ENSURE(c && c->state == ST_ESTABLISHED && buf && len, SRDMA_EINVAL,
	       "test: bad raw RDMA");
	rr = find_remote(c, region);
	ENSURE(rr, SRDMA_ENOENT, "test: no region %u", region);
	ops = c->ctx->tp->ops;
	GUARD(ops->mr_reg(c->tc, buf, len, SRDMA_TP_LOCAL, &mr));
	c->test_done = false;
	rc = write ? ops->post_write(c->tc, mr, buf, len, rr->addr + off,
				     rr->key, WR_ID(WR_TEST, 0),
				     SRDMA_TP_F_DELIVERED)
		   : ops->post_read(c->tc, mr, buf, len, rr->addr + off,
				    rr->key, WR_ID(WR_TEST, 0), 0);
	dl = srdma__now_ms() + (uint64_t)timeout_ms;
	while (rc >= 0 && !c->test_done && c->state == ST_ESTABLISHED &&
	       srdma__now_ms() < dl)
		rc = srdma__ctx_run(c->ctx, 10);
	ops->mr_dereg(mr);
	if (rc < 0)
		return rc;
	ENSURE(c->test_done, SRDMA_ETIMEDOUT,
	       "test: raw RDMA did not finish (connection %s, post %d)",
	       srdma__state_name(c->state), rc);
	return c->test_status;
}

int srdma__test_raw_write(struct srdma_conn *c, uint32_t region, uint64_t off,
			  const void *buf, size_t len, int timeout_ms)
{
	return raw_rdma(c, true, region, off, (void *)buf, len, timeout_ms);
}

int srdma__test_raw_read(struct srdma_conn *c, uint32_t region, uint64_t off,
			 void *buf, size_t len, int timeout_ms)
{
	return raw_rdma(c, false, region, off, buf, len, timeout_ms);
}

void srdma__test_cqe(struct srdma_conn *c, const struct srdma__tp_cqe *cqe)
{
	c->test_status = cqe->status;
	c->test_done = true;
}
#else
void srdma__test_cqe(struct srdma_conn *c, const struct srdma__tp_cqe *cqe)
{
	(void)c, (void)cqe; /* nothing posts WR_TEST without the hooks */
}

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
