/* SPDX-License-Identifier: MIT */
/*
 * Event queues: connection events (FI_CONNREQ, FI_CONNECTED, FI_SHUTDOWN)
 * and their errors. An error carries our sentence: fi_eq_strerror()
 * returns it (srdma_strerror() and the detail of what failed), except
 * after fi_reject, where err_data is the peer's reject data as libfabric
 * requires.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "prov.h"

enum { SP_PROV_REJECTED = 1000 }; /* prov_errno: the peer called fi_reject */

struct eq_entry {
	struct sp_list link;
	uint32_t event;
	bool is_err;
	struct fi_eq_err_entry err;
	uint8_t *err_data;
	size_t err_len;
	size_t len;
	uint8_t buf[];
};

static struct eq_entry *entry_new(size_t len)
{
	struct eq_entry *e = calloc(1, sizeof(*e) + len);

	if (e)
		sp_list_init(&e->link);
	return e;
}

static void entry_free(struct eq_entry *e)
{
	if (!e)
		return;
	if (!e->is_err && e->event == FI_CONNREQ) {
		struct fi_eq_cm_entry *cm = (void *)e->buf;

		fi_freeinfo(cm->info);
	}
	free(e->err_data);
	free(e);
}

int sp_eq_push(struct sp_eq *eq, uint32_t event, fid_t fid,
	       struct fi_info *info, const void *data, size_t len)
{
	struct eq_entry *e = entry_new(sizeof(struct fi_eq_cm_entry) + len);
	struct fi_eq_cm_entry *cm;

	if (!e)
		return -FI_ENOMEM;
	cm = (void *)e->buf;
	cm->fid = fid;
	cm->info = info;
	if (len)
		memcpy(cm->data, data, len);
	e->event = event;
	e->len = sizeof(*cm) + len;
	sp_list_add_tail(&eq->entries, &e->link);
	return 0;
}

int sp_eq_push_err(struct sp_eq *eq, fid_t fid, void *context, int err,
		   int code, const char *text, const void *data, size_t len)
{
	struct eq_entry *e = entry_new(0);

	if (!e)
		return -FI_ENOMEM;
	e->is_err = true;
	e->err.fid = fid;
	e->err.context = context;
	e->err.err = err;
	if (code) {
		/* our sentence, NUL-terminated */
		e->err.prov_errno = -code;
		len = strlen(text) + 1;
		data = text;
	} else {
		e->err.prov_errno = SP_PROV_REJECTED;
	}
	if (len) {
		e->err_data = malloc(len);
		if (!e->err_data) {
			free(e);
			return -FI_ENOMEM;
		}
		memcpy(e->err_data, data, len);
		e->err_len = len;
	}
	sp_list_add_tail(&eq->entries, &e->link);
	return 0;
}

bool sp_eq_ready(struct sp_eq *eq)
{
	return !sp_list_empty(&eq->entries);
}

static struct eq_entry *head(struct sp_eq *eq)
{
	if (sp_list_empty(&eq->entries))
		return NULL;
	return SP_CONTAINER(eq->entries.next, struct eq_entry, link);
}

static ssize_t eq_read_locked(struct sp_eq *eq, uint32_t *event, void *buf,
			      size_t len, uint64_t flags)
{
	struct eq_entry *e;
	ssize_t n;

	sp_progress(eq->fab);
	e = head(eq);
	if (!e)
		return -FI_EAGAIN;
	if (e->is_err)
		return -FI_EAVAIL;
	if (len < e->len)
		return -FI_ETOOSMALL;
	if (event)
		*event = e->event;
	memcpy(buf, e->buf, e->len);
	n = (ssize_t)e->len;
	if (!(flags & FI_PEEK)) {
		sp_list_del(&e->link);
		if (e->event == FI_CONNREQ) /* the info is the consumer's now */
			((struct fi_eq_cm_entry *)(void *)e->buf)->info = NULL;
		entry_free(e);
	}
	return n;
}

static ssize_t eq_read(struct fid_eq *fid, uint32_t *event, void *buf,
		       size_t len, uint64_t flags)
{
	struct sp_eq *eq = SP_CONTAINER(fid, struct sp_eq, fid);
	ssize_t n;

	sp_lock(eq->fab);
	n = eq_read_locked(eq, event, buf, len, flags);
	sp_unlock(eq->fab);
	return n;
}

static ssize_t eq_readerr(struct fid_eq *fid, struct fi_eq_err_entry *buf,
			  uint64_t flags)
{
	struct sp_eq *eq = SP_CONTAINER(fid, struct sp_eq, fid);
	struct eq_entry *e;
	size_t user_len = buf->err_data_size;
	void *user_data = buf->err_data;

	sp_lock(eq->fab);
	e = head(eq);
	if (!e || !e->is_err) {
		sp_unlock(eq->fab);
		return -FI_EAGAIN;
	}
	*buf = e->err;
	if (user_len && user_data) {
		/* API 1.5+: the consumer's buffer */
		size_t n = e->err_len < user_len ? e->err_len : user_len;

		if (n)
			memcpy(user_data, e->err_data, n);
		buf->err_data = user_data;
		buf->err_data_size = n;
	} else {
		free(eq->last_err_data);
		eq->last_err_data = e->err_data; /* ours until the next call */
		buf->err_data = e->err_data;
		buf->err_data_size = e->err_len;
		e->err_data = NULL;
	}
	if (!(flags & FI_PEEK)) {
		sp_list_del(&e->link);
		entry_free(e);
	}
	sp_unlock(eq->fab);
	return sizeof(*buf);
}

static ssize_t eq_write(struct fid_eq *fid, uint32_t event, const void *buf,
			size_t len, uint64_t flags)
{
	struct sp_eq *eq = SP_CONTAINER(fid, struct sp_eq, fid);
	struct eq_entry *e = entry_new(len);

	if (!e)
		return -FI_ENOMEM;
	e->event = event;
	e->len = len;
	memcpy(e->buf, buf, len);
	sp_lock(eq->fab);
	sp_list_add_tail(&eq->entries, &e->link);
	sp_signal(eq->fab);
	sp_unlock(eq->fab);
	return (ssize_t)len;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static ssize_t eq_sread(struct fid_eq *fid, uint32_t *event, void *buf,
			size_t len, int timeout, uint64_t flags)
{
	struct sp_eq *eq = SP_CONTAINER(fid, struct sp_eq, fid);
	uint64_t dl = timeout < 0 ? UINT64_MAX : now_ms() + (uint64_t)timeout;
	ssize_t n;

	if (eq->wait == FI_WAIT_NONE)
		return -FI_EINVAL;
	for (;;) {
		uint64_t now;

		sp_lock(eq->fab);
		n = eq_read_locked(eq, event, buf, len, flags);
		sp_unlock(eq->fab);
		if (n != -FI_EAGAIN)
			return n;
		now = now_ms();
		if (now >= dl)
			return -FI_EAGAIN;
		sp_wait(eq->fab, dl == UINT64_MAX ? -1 : (int)(dl - now));
	}
}

static const char *eq_strerror(struct fid_eq *fid, int prov_errno,
			       const void *err_data, char *buf, size_t len)
{
	const char *s;

	if (prov_errno == SP_PROV_REJECTED)
		s = "The peer rejected the connection (fi_reject).";
	else if (err_data && prov_errno > 0)
		s = err_data; /* our sentence, NUL-terminated */
	else
		s = srdma_strerror(-prov_errno);
	return sp_strerror_out(s, buf, len);
}

static int eq_control(struct fid *fid, int command, void *arg)
{
	struct sp_eq *eq = SP_CONTAINER(fid, struct sp_eq, fid.fid);

	return sp_wait_control(eq->wait, eq->wait_fd, command, arg);
}

static int eq_close(struct fid *fid)
{
	struct sp_eq *eq = SP_CONTAINER(fid, struct sp_eq, fid.fid);
	struct sp_fabric *f = eq->fab;

	sp_lock(f);
	if (eq->refs > 0) {
		sp_unlock(f);
		return -FI_EBUSY;
	}
	while (!sp_list_empty(&eq->entries)) {
		struct eq_entry *e = head(eq);

		sp_list_del(&e->link);
		entry_free(e);
	}
	free(eq->last_err_data);
	f->refs--;
	sp_unlock(f);
	if (eq->wait_fd >= 0)
		close(eq->wait_fd);
	free(eq);
	return 0;
}

static struct fi_ops eq_fi_ops = {
	.size = sizeof(struct fi_ops),
	.close = eq_close,
	.bind = sp_no_bind,
	.control = eq_control,
	.ops_open = sp_no_ops_open,
};

static struct fi_ops_eq eq_ops = {
	.size = sizeof(struct fi_ops_eq),
	.read = eq_read,
	.readerr = eq_readerr,
	.write = eq_write,
	.sread = eq_sread,
	.strerror = eq_strerror,
};

int sp_eq_open(struct fid_fabric *fabric, struct fi_eq_attr *attr,
	       struct fid_eq **out, void *context)
{
	struct sp_fabric *f = SP_CONTAINER(fabric, struct sp_fabric, fid);
	struct sp_eq *eq;

	switch (attr->wait_obj) {
	case FI_WAIT_NONE:
	case FI_WAIT_UNSPEC:
	case FI_WAIT_FD:
		break;
	default:
		return -FI_ENOSYS;
	}
	eq = calloc(1, sizeof(*eq));
	if (!eq)
		return -FI_ENOMEM;
	eq->fab = f;
	eq->wait =
		attr->wait_obj == FI_WAIT_UNSPEC ? FI_WAIT_FD : attr->wait_obj;
	eq->wait_fd = -1;
	if (eq->wait == FI_WAIT_FD) {
		eq->wait_fd = sp_wait_fd_new(f);
		if (eq->wait_fd < 0) {
			free(eq);
			return -FI_EMFILE;
		}
	}
	sp_list_init(&eq->entries);
	eq->fid.fid.fclass = FI_CLASS_EQ;
	eq->fid.fid.context = context;
	eq->fid.fid.ops = &eq_fi_ops;
	eq->fid.ops = &eq_ops;
	sp_lock(f);
	f->refs++;
	sp_unlock(f);
	*out = &eq->fid;
	return 0;
}
