/* SPDX-License-Identifier: MIT */
/*
 * ofi backend: the listener. Its passive endpoint and EQ, connect
 * requests handed to the session (rejected if it decides nothing),
 * listen, port, destroy, and reject.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include <openssl/crypto.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>

#include "transport/ofi/ofi_int.h"

static void addr_text(const void *sa, char *out, size_t len)
{
	const struct sockaddr *s = sa;
	char ip[INET6_ADDRSTRLEN] = "?";

	if (!sa) {
		snprintf(out, len, "?");
		return;
	}
	if (s->sa_family == AF_INET) {
		const struct sockaddr_in *in = sa;
		inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
		snprintf(out, len, "%s:%u", ip, ntohs(in->sin_port));
	} else if (s->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
		snprintf(out, len, "[%s]:%u", ip, ntohs(in6->sin6_port));
	} else {
		snprintf(out, len, "family-%d", s->sa_family);
	}
}

/* ---- listener ----------------------------------------------------------- */

static void listener_free(struct srdma__tp_listener *l)
{
	srdma__ofi_close_fid(l->pep ? &l->pep->fid : NULL, "passive endpoint",
			     l->o);
	srdma__ofi_close_fid(l->eq ? &l->eq->fid : NULL, "listener eq", l->o);
	free(l);
}

static void connreq(struct srdma__tp_listener *l, struct fi_eq_cm_entry *cm,
		    size_t n)
{
	struct pending_req p = {.info = cm->info};
	struct srdma__tp_connreq req;
	size_t len = n > sizeof(*cm) ? n - sizeof(*cm) : 0;

	memset(&req, 0, sizeof(req));
	req.pdata_len = len < PDATA_MAX ? len : PDATA_MAX;
	memcpy(req.pdata, cm->data, req.pdata_len);
	addr_text(cm->info ? cm->info->dest_addr : NULL, req.peer,
		  sizeof(req.peer));
	req.handle = &p;
	if (l->cb.on_connreq)
		l->cb.on_connreq(l->cb.arg, &req);
	if (!p.handled && cm->info) {
		int rc = fi_reject(l->pep, cm->info->handle, NULL, 0);
		if (rc)
			srdma__log(l->o->tp->log, SRDMA_LOG_WARN,
				   "ofi: fi_reject(%s): %s", req.peer,
				   fi_strerror(-rc));
	}
	fi_freeinfo(cm->info);
	OPENSSL_cleanse(req.pdata, sizeof(req.pdata));
}

static void listener_work(void *arg, uint32_t events)
{
	struct srdma__tp_listener *l = arg;
	union {
		struct fi_eq_cm_entry cm;
		uint8_t raw[sizeof(struct fi_eq_cm_entry) + PDATA_MAX];
	} buf;
	uint32_t event;
	ssize_t n;

	if (l->dead)
		return;
	l->depth++;
	while (!l->dead) {
		n = fi_eq_read(l->eq, &event, &buf, sizeof(buf), 0);
		if (n == -FI_EAGAIN)
			break;
		if (n == -FI_EAVAIL) {
			struct fi_eq_err_entry err;

			memset(&err, 0, sizeof(err));
			if (fi_eq_readerr(l->eq, &err, 0) >= 0)
				srdma__log(l->o->tp->log, SRDMA_LOG_INFO,
					   "ofi: listener event error: %s",
					   fi_strerror(err.err));
			continue;
		}
		if (n < 0) {
			srdma__log(l->o->tp->log, SRDMA_LOG_WARN,
				   "ofi: listener fi_eq_read: %s",
				   fi_strerror((int)-n));
			break;
		}
		if (event == FI_CONNREQ)
			connreq(l, &buf.cm, (size_t)n);
		else if (n >= (ssize_t)sizeof(buf.cm) && buf.cm.info)
			fi_freeinfo(buf.cm.info);
	}
	l->depth--;
	if (l->dead && l->depth == 0)
		listener_free(l);
}

static int listener_prepare(void *arg)
{
	struct srdma__tp_listener *l = arg;
	struct fid *f;

	if (l->dead)
		return 0;
	f = &l->eq->fid;
	return fi_trywait(l->o->fabric, &f, 1) == -FI_EAGAIN ? 1 : 0;
}

int srdma__ofi_listen(struct srdma__tp *tp, const char *host, uint16_t port,
		      const struct srdma__tp_listener_cb *cb,
		      struct srdma__tp_listener **out)
{
	struct ofi *o = tp->priv;
	struct fi_eq_attr eq_attr = {.size = EQ_SIZE, .wait_obj = FI_WAIT_FD};
	struct sockaddr_storage ss;
	size_t alen = sizeof(ss);
	struct fi_info *hints, *info = NULL;
	struct srdma__tp_listener *l;
	const char *node = host && *host ? host : "0.0.0.0";
	char svc[8];
	int rc, ret, fd = -1;

	GUARD(srdma__ofi_ready(o));
	ENSURE(o, SRDMA_ESTATE, "the ofi transport is not open");
	ENSURE(cb && cb->on_connreq, SRDMA_EINVAL,
	       "listen needs an on_connreq callback");
	l = calloc(1, sizeof(*l));
	ENSURE(l, SRDMA_ENOMEM, "out of memory for a fabric listener");
	l->o = o;
	l->cb = *cb;
	hints = srdma__ofi_make_hints(o->prov, NULL, o->order);
	if (!hints) {
		ret = srdma__err(SRDMA_ENOMEM, "out of memory for hints");
		goto out_free_l;
	}
	snprintf(svc, sizeof(svc), "%u", port);
	rc = fi_getinfo(OFI_API, node, svc, FI_SOURCE, hints, &info);
	fi_freeinfo(hints);
	if (rc) {
		ret = srdma__err(SRDMA_ENODEV,
				 "libfabric provider %s cannot listen on %s "
				 "port %u: %s",
				 o->prov, node, port, fi_strerror(-rc));
		goto out_free_l;
	}
	rc = fi_passive_ep(o->fabric, info, &l->pep, l);
	fi_freeinfo(info);
	if (rc) {
		ret = srdma__err(SRDMA_EFABRIC, "fi_passive_ep(%s:%u): %s",
				 node, port, fi_strerror(-rc));
		goto out_free_l;
	}
	rc = fi_eq_open(o->fabric, &eq_attr, &l->eq, l);
	if (rc) {
		ret = srdma__err(SRDMA_EFABRIC, "fi_eq_open: %s",
				 fi_strerror(-rc));
		goto out_close_pep;
	}
	rc = fi_pep_bind(l->pep, &l->eq->fid, 0);
	if (!rc)
		rc = fi_listen(l->pep);
	if (rc) {
		ret = srdma__err(rc == -FI_EADDRINUSE ? SRDMA_ESYS
						      : SRDMA_EFABRIC,
				 "fi_listen on %s port %u: %s", node, port,
				 fi_strerror(-rc));
		goto out_close_eq;
	}
	rc = fi_getname(&l->pep->fid, &ss, &alen);
	if (!rc)
		rc = fi_control(&l->eq->fid, FI_GETWAIT, &fd);
	if (rc) {
		ret = srdma__err(SRDMA_EFABRIC, "fi_getname/FI_GETWAIT: %s",
				 fi_strerror(-rc));
		goto out_close_eq;
	}
	if (ss.ss_family == AF_INET)
		l->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	else if (ss.ss_family == AF_INET6)
		l->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	ret = srdma__loop_add(tp->loop, fd, EPOLLIN, listener_work,
			      listener_prepare, l, &l->reg);
	if (ret)
		goto out_close_eq;
	*out = l;
	return 0;

out_close_eq:
	srdma__ofi_close_fid(&l->eq->fid, "listener eq", o);
	l->eq = NULL;
out_close_pep:
	srdma__ofi_close_fid(&l->pep->fid, "passive endpoint", o);
	l->pep = NULL;
out_free_l:
	free(l);
	return ret;
}

uint16_t srdma__ofi_listener_port(const struct srdma__tp_listener *l)
{
	return l ? l->port : 0;
}

void srdma__ofi_listener_destroy(struct srdma__tp_listener *l)
{
	if (!l || l->dead)
		return;
	l->dead = true;
	srdma__loop_del(l->reg);
	l->reg = NULL;
	/* Inside on_connreq the pep is still needed to reject: defer. */
	if (l->depth == 0)
		listener_free(l);
}

int srdma__ofi_reject(struct srdma__tp_listener *l,
		      struct srdma__tp_connreq *req, const void *pdata,
		      size_t len)
{
	struct pending_req *p = req ? req->handle : NULL;
	int rc;

	ENSURE(p && p->info && !p->handled, SRDMA_EINVAL,
	       "reject needs a connect request not yet answered");
	ENSURE(len <= PDATA_MAX, SRDMA_EINVAL,
	       "reject private data is %zu bytes, at most %d fit", len,
	       PDATA_MAX);
	p->handled = true;
	rc = fi_reject(l->pep, p->info->handle, pdata, len);
	ENSURE(!rc, SRDMA_EFABRIC, "fi_reject(%s): %s", req->peer,
	       fi_strerror(-rc));
	return 0;
}
