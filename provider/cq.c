/* SPDX-License-Identifier: MIT */
/*
 * Completion queues. Entries are kept as fi_cq_tagged_entry and copied out
 * in the format asked for. An error entry's err_data is our sentence (what
 * failed the connection: a peer from another CA, data that failed
 * authentication, ...), which fi_cq_strerror() returns.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "prov.h"

struct cq_err {
	struct sp_list link;
	uint64_t seq;
	struct fi_cq_err_entry e;
	char text[SP_ERR_TEXT];
};

static size_t entry_size(enum fi_cq_format f)
{
	switch (f) {
	case FI_CQ_FORMAT_CONTEXT:
		return sizeof(struct fi_cq_entry);
	case FI_CQ_FORMAT_MSG:
		return sizeof(struct fi_cq_msg_entry);
	case FI_CQ_FORMAT_DATA:
		return sizeof(struct fi_cq_data_entry);
	case FI_CQ_FORMAT_TAGGED:
		return sizeof(struct fi_cq_tagged_entry);
	default:
		return 0;
	}
}

int sp_cq_push(struct sp_cq *cq, void *context, uint64_t flags, size_t len,
	       void *buf, uint64_t data)
{
	struct fi_cq_tagged_entry *t;

	if (cq->count == cq->cap) {
		size_t cap = cq->cap ? cq->cap * 2 : 256;
		struct sp_cqe *r = malloc(cap * sizeof(*r));

		if (!r)
			return -FI_ENOMEM;
		for (size_t i = 0; i < cq->count; i++)
			r[i] = cq->ring[(cq->head + i) % cq->cap];
		free(cq->ring);
		cq->ring = r;
		cq->cap = cap;
		cq->head = 0;
	}
	cq->ring[(cq->head + cq->count) % cq->cap].seq = cq->seq++;
	t = &cq->ring[(cq->head + cq->count) % cq->cap].e;
	t->op_context = context;
	t->flags = flags;
	t->len = len;
	t->buf = buf;
	t->data = data;
	t->tag = 0;
	cq->count++;
	return 0;
}

int sp_cq_push_err(struct sp_cq *cq, void *context, uint64_t flags, int err,
		   int code, const char *text, size_t olen)
{
	struct cq_err *e = calloc(1, sizeof(*e));

	if (!e)
		return -FI_ENOMEM;
	e->seq = cq->seq++;
	e->e.op_context = context;
	e->e.flags = flags;
	e->e.err = err;
	e->e.olen = olen;
	e->e.prov_errno = -code;
	snprintf(e->text, sizeof(e->text), "%s", text);
	sp_list_add_tail(&cq->errs, &e->link);
	return 0;
}

bool sp_cq_ready(struct sp_cq *cq)
{
	return cq->count > 0 || !sp_list_empty(&cq->errs);
}

static ssize_t cq_read_locked(struct sp_cq *cq, void *buf, size_t count,
			      fi_addr_t *src_addr)
{
	size_t sz = entry_size(cq->format), n = 0;
	uint8_t *out = buf;

	uint64_t err_seq = UINT64_MAX;

	sp_progress(cq->fab);
	/* Completions come out in the order they were made, errors too:
	 * entries made before the first error first, then FI_EAVAIL. */
	if (!sp_list_empty(&cq->errs))
		err_seq = SP_CONTAINER(cq->errs.next, struct cq_err, link)->seq;
	if (err_seq != UINT64_MAX &&
	    (!cq->count || cq->ring[cq->head].seq > err_seq))
		return -FI_EAVAIL;
	while (n < count && cq->count && cq->ring[cq->head].seq < err_seq) {
		struct fi_cq_tagged_entry *t = &cq->ring[cq->head].e;

		memcpy(out + n * sz, t, sz); /* the formats are prefixes */
		if (src_addr)
			src_addr[n] = FI_ADDR_NOTAVAIL;
		cq->head = (cq->head + 1) % cq->cap;
		cq->count--;
		n++;
	}
	return n ? (ssize_t)n : -FI_EAGAIN;
}

static ssize_t cq_readfrom(struct fid_cq *fid, void *buf, size_t count,
			   fi_addr_t *src_addr)
{
	struct sp_cq *cq = SP_CONTAINER(fid, struct sp_cq, fid);
	ssize_t n;

	sp_lock(cq->fab);
	n = cq_read_locked(cq, buf, count, src_addr);
	sp_unlock(cq->fab);
	return n;
}

static ssize_t cq_read(struct fid_cq *fid, void *buf, size_t count)
{
	return cq_readfrom(fid, buf, count, NULL);
}

static ssize_t cq_readerr(struct fid_cq *fid, struct fi_cq_err_entry *buf,
			  uint64_t flags)
{
	struct sp_cq *cq = SP_CONTAINER(fid, struct sp_cq, fid);
	size_t user_len = buf->err_data_size;
	void *user_data = buf->err_data;
	struct cq_err *e;
	size_t tlen;

	sp_lock(cq->fab);
	if (sp_list_empty(&cq->errs)) {
		sp_unlock(cq->fab);
		return -FI_EAGAIN;
	}
	e = SP_CONTAINER(cq->errs.next, struct cq_err, link);
	sp_list_del(&e->link);
	*buf = e->e;
	tlen = strlen(e->text) + 1;
	if (user_len && user_data) {
		size_t n = tlen < user_len ? tlen : user_len;

		memcpy(user_data, e->text, n);
		((char *)user_data)[n - 1] = '\0';
		buf->err_data = user_data;
		buf->err_data_size = n;
	} else {
		free(cq->last_err_text);
		cq->last_err_text = strdup(e->text);
		buf->err_data = cq->last_err_text;
		buf->err_data_size = cq->last_err_text ? tlen : 0;
	}
	free(e);
	sp_unlock(cq->fab);
	return 1;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static ssize_t cq_sreadfrom(struct fid_cq *fid, void *buf, size_t count,
			    fi_addr_t *src_addr, const void *cond, int timeout)
{
	struct sp_cq *cq = SP_CONTAINER(fid, struct sp_cq, fid);
	uint64_t dl = timeout < 0 ? UINT64_MAX : now_ms() + (uint64_t)timeout;
	ssize_t n;

	if (cq->wait == FI_WAIT_NONE)
		return -FI_EINVAL;
	for (;;) {
		uint64_t now;

		sp_lock(cq->fab);
		n = cq_read_locked(cq, buf, count, src_addr);
		sp_unlock(cq->fab);
		if (n != -FI_EAGAIN)
			return n;
		now = now_ms();
		if (now >= dl)
			return -FI_EAGAIN;
		sp_wait(cq->fab, dl == UINT64_MAX ? -1 : (int)(dl - now));
	}
}

static ssize_t cq_sread(struct fid_cq *fid, void *buf, size_t count,
			const void *cond, int timeout)
{
	return cq_sreadfrom(fid, buf, count, NULL, cond, timeout);
}

static int cq_signal(struct fid_cq *fid)
{
	struct sp_cq *cq = SP_CONTAINER(fid, struct sp_cq, fid);

	sp_signal(cq->fab);
	return 0;
}

static const char *cq_strerror(struct fid_cq *fid, int prov_errno,
			       const void *err_data, char *buf, size_t len)
{
	const char *s = err_data && prov_errno > 0
				? err_data
				: srdma_strerror(-prov_errno);

	return sp_strerror_out(s, buf, len);
}

static int cq_control(struct fid *fid, int command, void *arg)
{
	struct sp_cq *cq = SP_CONTAINER(fid, struct sp_cq, fid.fid);

	return sp_wait_control(cq->wait, cq->wait_fd, command, arg);
}

static int cq_close(struct fid *fid)
{
	struct sp_cq *cq = SP_CONTAINER(fid, struct sp_cq, fid.fid);
	struct sp_fabric *f = cq->fab;

	sp_lock(f);
	if (cq->refs > 0) {
		sp_unlock(f);
		return -FI_EBUSY;
	}
	while (!sp_list_empty(&cq->errs)) {
		struct cq_err *e =
			SP_CONTAINER(cq->errs.next, struct cq_err, link);

		sp_list_del(&e->link);
		free(e);
	}
	cq->dom->refs--;
	sp_unlock(f);
	if (cq->wait_fd >= 0)
		close(cq->wait_fd);
	free(cq->ring);
	free(cq->last_err_text);
	free(cq);
	return 0;
}

static struct fi_ops cq_fi_ops = {
	.size = sizeof(struct fi_ops),
	.close = cq_close,
	.bind = sp_no_bind,
	.control = cq_control,
	.ops_open = sp_no_ops_open,
};

static struct fi_ops_cq cq_ops = {
	.size = sizeof(struct fi_ops_cq),
	.read = cq_read,
	.readfrom = cq_readfrom,
	.readerr = cq_readerr,
	.sread = cq_sread,
	.sreadfrom = cq_sreadfrom,
	.signal = cq_signal,
	.strerror = cq_strerror,
};

int sp_cq_open(struct fid_domain *domain, struct fi_cq_attr *attr,
	       struct fid_cq **out, void *context)
{
	struct sp_domain *d = SP_CONTAINER(domain, struct sp_domain, fid);
	struct sp_cq *cq;

	if (attr->flags & FI_AFFINITY)
		return -FI_ENOSYS;
	switch (attr->wait_obj) {
	case FI_WAIT_NONE:
	case FI_WAIT_UNSPEC:
	case FI_WAIT_FD:
		break;
	default:
		return -FI_ENOSYS;
	}
	if (attr->wait_cond != FI_CQ_COND_NONE)
		return -FI_ENOSYS;
	cq = calloc(1, sizeof(*cq));
	if (!cq)
		return -FI_ENOMEM;
	cq->fab = d->fab;
	cq->format = attr->format == FI_CQ_FORMAT_UNSPEC ? FI_CQ_FORMAT_CONTEXT
							 : attr->format;
	if (!entry_size(cq->format)) {
		free(cq);
		return -FI_ENOSYS;
	}
	cq->wait =
		attr->wait_obj == FI_WAIT_UNSPEC ? FI_WAIT_FD : attr->wait_obj;
	cq->wait_fd = -1;
	if (cq->wait == FI_WAIT_FD) {
		cq->wait_fd = sp_wait_fd_new(d->fab);
		if (cq->wait_fd < 0) {
			free(cq);
			return -FI_EMFILE;
		}
	}
	sp_list_init(&cq->errs);
	cq->fid.fid.fclass = FI_CLASS_CQ;
	cq->fid.fid.context = context;
	cq->fid.fid.ops = &cq_fi_ops;
	cq->fid.ops = &cq_ops;
	cq->dom = d;
	sp_lock(d->fab);
	d->refs++;
	sp_unlock(d->fab);
	*out = &cq->fid;
	return 0;
}
