/* SPDX-License-Identifier: MIT */
/*
 * ofi backend: a connection. Its domain, CQ, EQ and endpoint, the
 * loop handler for both fds, EQ events (connected, shutdown, errors),
 * closing (flushes, then on_closed), resolve, connect, the server's
 * accept, disconnect, destroy and info.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_errno.h>

#include "transport/ofi/ofi_int.h"

void srdma__ofi_start_close(struct srdma__tp_conn *c, int status,
			    const char *detail)
{
	if (c->close_pending || c->state == C_CLOSED)
		return;
	c->close_pending = true;
	c->close_status = status;
	snprintf(c->close_detail, sizeof(c->close_detail), "%s", detail);
	srdma__loop_touch(c->cq_reg); /* the prepare hook finishes it */
}

/*
 * The endpoint goes away: real completions first, then the provider's
 * flushes, then our own ECLOSED for whatever the provider forgot, then
 * on_closed. Nothing is outstanding when on_closed runs.
 */
static void finish_close(struct srdma__tp_conn *c)
{
	char detail[DETAIL_LEN];
	int status = c->close_status;
	uint32_t i;

	c->close_pending = false;
	c->state = C_CLOSED;
	memcpy(detail, c->close_detail, sizeof(detail));
	do {
		srdma__ofi_deliver(c);
	} while (!c->dead && srdma__ofi_drain_cq(c) > 0);
	if (c->dead)
		return;
	srdma__ofi_close_fid(c->ep ? &c->ep->fid : NULL, "endpoint", c->o);
	c->ep = NULL;
	do {
		srdma__ofi_deliver(c);
	} while (!c->dead && srdma__ofi_drain_cq(c) > 0);
	for (i = 0; i < c->nops && !c->dead; i++) {
		struct op *op = &c->ops[i];
		struct srdma__tp_cqe e;

		if (!op->busy)
			continue;
		e = (struct srdma__tp_cqe){.wr_id = op->wr_id,
					   .op = op->type,
					   .status = srdma__ofi_flush_status(
						   c, op, SRDMA_ECLOSED)};
		srdma__ofi_op_put(c, op);
		c->cb.on_cqe(c->cb.arg, &e);
	}
	if (c->dead)
		return;
	if (c->rma_lost && (status == 0 || status == SRDMA_ECLOSED)) {
		status = SRDMA_EREMOTE_ACCESS;
		snprintf(detail, sizeof(detail),
			 "the peer dropped the fabric connection with %d RDMA "
			 "read/write operations outstanding (how the %s "
			 "provider "
			 "reports a bad key or an out-of-range address)",
			 c->rma_lost, c->o->prov);
	}
	c->cb.on_closed(c->cb.arg, status, detail);
}

static void eq_error(struct srdma__tp_conn *c)
{
	struct fi_eq_err_entry err;
	char detail[DETAIL_LEN];
	ssize_t n;

	memset(&err, 0, sizeof(err));
	n = fi_eq_readerr(c->eq, &err, 0);
	if (n < 0) {
		if (n != -FI_EAGAIN)
			srdma__ofi_start_close(c, SRDMA_EFABRIC,
					       "fi_eq_readerr failed");
		return;
	}
	if (err.err == FI_ECONNREFUSED) {
		size_t k, len = err.err_data ? err.err_data_size : 0;
		int off;

		off = snprintf(detail, sizeof(detail),
			       "the peer refused the fabric connection "
			       "(reject data: %zu bytes",
			       len);
		for (k = 0; k < len && k < 32 && off < (int)sizeof(detail) - 8;
		     k++)
			off += snprintf(detail + off, sizeof(detail) - off,
					"%s%02x", k ? "" : " ",
					((const uint8_t *)err.err_data)[k]);
		snprintf(detail + off, sizeof(detail) - off, "%s)%s",
			 len > 32 ? "..." : "",
			 len ? "" : "; or nothing listens on that port");
		srdma__ofi_start_close(c, SRDMA_ECONNREFUSED, detail);
		return;
	}
	snprintf(detail, sizeof(detail), "fabric connection failed: %s",
		 fi_strerror(err.err));
	switch (err.err) {
	case FI_ETIMEDOUT:
	case FI_EHOSTUNREACH:
	case FI_ENETUNREACH:
	case FI_ENETDOWN:
	case FI_EADDRNOTAVAIL:
		srdma__ofi_start_close(c, SRDMA_EUNREACHABLE, detail);
		break;
	default:
		srdma__ofi_start_close(c,
				       c->state == C_ESTABLISHED
					       ? SRDMA_ECLOSED
					       : SRDMA_EFABRIC,
				       detail);
	}
}

static void eq_poll(struct srdma__tp_conn *c)
{
	union {
		struct fi_eq_cm_entry cm;
		uint8_t raw[sizeof(struct fi_eq_cm_entry) + PDATA_MAX];
	} buf;
	uint32_t event;
	ssize_t n;

	while (c->eq && !c->dead && !c->close_pending && c->state != C_CLOSED) {
		n = fi_eq_read(c->eq, &event, &buf, sizeof(buf), 0);
		if (n == -FI_EAGAIN)
			break;
		if (n == -FI_EAVAIL) {
			eq_error(c);
			break;
		}
		if (n < 0) {
			srdma__ofi_start_close(c, SRDMA_EFABRIC,
					       "fi_eq_read failed");
			break;
		}
		if (event == FI_CONNECTED) {
			if (c->state == C_CONNECTING ||
			    c->state == C_ACCEPTING) {
				c->state = C_ESTABLISHED;
				c->cb.on_established(c->cb.arg);
			}
		} else if (event == FI_SHUTDOWN) {
			c->peer_dropped = c->state != C_CLOSING;
			srdma__ofi_start_close(
				c, 0, "the peer closed the fabric connection");
		}
	}
}

static void conn_free(struct srdma__tp_conn *c)
{
	free(c->ops);
	free(c->ring);
	free(c);
}

static void conn_work(void *arg, uint32_t events)
{
	struct srdma__tp_conn *c = arg;
	int pass;

	if (c->dead)
		return;
	srdma__loop_touch(c->cq_reg); /* the EQ's handler drains the CQ too */
	c->depth++;
	for (pass = 0; pass < HANDLER_PASSES && !c->dead; pass++) {
		int got = srdma__ofi_drain_cq(c);
		bool had = c->ring_count > 0;

		srdma__ofi_deliver(c);
		if (!got && !had)
			break;
	}
	if (!c->dead)
		eq_poll(c);
	if (!c->dead && c->close_pending)
		finish_close(c);
	c->depth--;
	if (c->dead && c->depth == 0)
		conn_free(c);
}

static int conn_prepare(void *arg)
{
	struct srdma__tp_conn *c = arg;
	struct fid *fids[2];
	int rc;

	if (c->dead)
		return 0;
	if (c->close_pending || c->ring_count)
		return 1;
	fids[0] = &c->cq->fid;
	fids[1] = &c->eq->fid;
	rc = fi_trywait(c->o->fabric, fids, 2);
	return rc == -FI_EAGAIN ? 1 : 0;
}

/* ---- connection lifecycle --------------------------------------------- */

int srdma__ofi_conn_create(struct srdma__tp *tp,
			   const struct srdma__tp_conn_attr *attr,
			   const struct srdma__tp_conn_cb *cb,
			   struct srdma__tp_conn **out)
{
	struct ofi *o = tp->priv;
	struct fi_cq_attr cq_attr = {0};
	struct fi_eq_attr eq_attr = {0};
	struct srdma__tp_conn *c;
	int cq_fd = -1, eq_fd = -1, rc, ret;
	uint32_t i;

	GUARD(srdma__ofi_ready(o));
	ENSURE(o, SRDMA_ESTATE, "the ofi transport is not open");
	ENSURE(attr && cb && cb->on_cqe && cb->on_closed && cb->on_established,
	       SRDMA_EINVAL, "conn_create needs attributes and callbacks");
	c = calloc(1, sizeof(*c));
	ENSURE(c, SRDMA_ENOMEM, "out of memory for a fabric connection");
	c->o = o;
	c->cb = *cb;
	c->attr = *attr;
	c->nops = (attr->sq_depth ? attr->sq_depth : 1) +
		  (attr->rq_depth ? attr->rq_depth : 1);
	c->ops = calloc(c->nops, sizeof(*c->ops));
	c->ring = calloc(c->nops, sizeof(*c->ring));
	if (!c->ops || !c->ring) {
		ret = srdma__err(SRDMA_ENOMEM,
				 "out of memory for %u work requests", c->nops);
		goto out_free_c;
	}
	for (i = c->nops; i-- > 0;)
		srdma__ofi_op_put(c, &c->ops[i]);
	c->inject_size = o->info->tx_attr->inject_size;
	c->max_inline = attr->max_inline < c->inject_size
				? attr->max_inline
				: (uint32_t)c->inject_size;

	/* One domain per connection: keys never cross connections. */
	rc = fi_domain(o->fabric, o->info, &c->domain, c);
	if (rc) {
		ret = srdma__err(SRDMA_EFABRIC, "fi_domain(%s): %s", o->prov,
				 fi_strerror(-rc));
		goto out_free_c;
	}
	cq_attr.size = c->nops;
	cq_attr.format = FI_CQ_FORMAT_DATA;
	cq_attr.wait_obj = FI_WAIT_FD;
	rc = fi_cq_open(c->domain, &cq_attr, &c->cq, c);
	if (rc) {
		ret = srdma__err(SRDMA_EFABRIC, "fi_cq_open(%u entries): %s",
				 c->nops, fi_strerror(-rc));
		goto out_close_domain;
	}
	eq_attr.size = EQ_SIZE;
	eq_attr.wait_obj = FI_WAIT_FD;
	rc = fi_eq_open(o->fabric, &eq_attr, &c->eq, c);
	if (rc) {
		ret = srdma__err(SRDMA_EFABRIC, "fi_eq_open: %s",
				 fi_strerror(-rc));
		goto out_close_cq;
	}
	rc = fi_control(&c->cq->fid, FI_GETWAIT, &cq_fd);
	if (!rc)
		rc = fi_control(&c->eq->fid, FI_GETWAIT, &eq_fd);
	if (rc) {
		ret = srdma__err(SRDMA_EFABRIC, "fi_control(FI_GETWAIT): %s",
				 fi_strerror(-rc));
		goto out_close_eq;
	}
	ret = srdma__loop_add(tp->loop, cq_fd, EPOLLIN, conn_work, conn_prepare,
			      c, &c->cq_reg);
	if (ret)
		goto out_close_eq;
	ret = srdma__loop_add(tp->loop, eq_fd, EPOLLIN, conn_work, NULL, c,
			      &c->eq_reg);
	if (ret)
		goto out_del_cq;
	c->state = C_INIT;
	*out = c;
	return 0;

out_del_cq:
	srdma__loop_del(c->cq_reg);
out_close_eq:
	srdma__ofi_close_fid(&c->eq->fid, "eq", o);
out_close_cq:
	srdma__ofi_close_fid(&c->cq->fid, "cq", o);
out_close_domain:
	srdma__ofi_close_fid(&c->domain->fid, "domain", o);
out_free_c:
	conn_free(c);
	return ret;
}

/* Binds CQ and EQ and enables, so receives can be posted at once. */
static int setup_ep(struct srdma__tp_conn *c, struct fi_info *info)
{
	int rc;

	rc = fi_endpoint(c->domain, info, &c->ep, c);
	if (rc)
		return srdma__err(SRDMA_EFABRIC, "fi_endpoint: %s",
				  fi_strerror(-rc));
	rc = fi_ep_bind(c->ep, &c->eq->fid, 0);
	if (!rc)
		rc = fi_ep_bind(c->ep, &c->cq->fid, FI_TRANSMIT | FI_RECV);
	if (!rc)
		rc = fi_enable(c->ep);
	if (rc) {
		srdma__ofi_close_fid(&c->ep->fid, "endpoint", c->o);
		c->ep = NULL;
		return srdma__err(SRDMA_EFABRIC, "binding the endpoint: %s",
				  fi_strerror(-rc));
	}
	return 0;
}

int srdma__ofi_resolve(struct srdma__tp_conn *c, const char *host,
		       uint16_t port, int timeout_ms)
{
	struct fi_info *hints, *info = NULL;
	char svc[8];
	int rc, ret;

	ENSURE(c->state == C_INIT && !c->attr.server, SRDMA_ESTATE,
	       "resolve is for a fresh client connection");
	ENSURE(host && *host, SRDMA_EINVAL, "resolve needs a host");
	hints = srdma__ofi_make_hints(c->o->prov, NULL, c->o->order);
	ENSURE(hints, SRDMA_ENOMEM, "out of memory for fi_info hints");
	snprintf(svc, sizeof(svc), "%u", port);
	rc = fi_getinfo(OFI_API, host, svc, 0, hints, &info);
	fi_freeinfo(hints);
	ENSURE(!rc, SRDMA_EUNREACHABLE,
	       "cannot reach %s port %u with libfabric provider %s: %s", host,
	       port, c->o->prov, fi_strerror(-rc));
	if (!info->dest_addr || info->dest_addrlen > sizeof(c->dest)) {
		fi_freeinfo(info);
		return srdma__err(SRDMA_EUNREACHABLE,
				  "libfabric gave no usable address for %s",
				  host);
	}
	memcpy(&c->dest, info->dest_addr, info->dest_addrlen);
	ret = setup_ep(c, info);
	fi_freeinfo(info);
	GUARD(ret);
	c->state = C_PREPARED;
	return 0;
}

void srdma__ofi_set_port(struct srdma__tp_conn *c, uint16_t port)
{
	if (c->dest.ss_family == AF_INET)
		((struct sockaddr_in *)&c->dest)->sin_port = htons(port);
	else if (c->dest.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&c->dest)->sin6_port = htons(port);
}

int srdma__ofi_connect(struct srdma__tp_conn *c, const void *pdata, size_t len)
{
	int rc;

	ENSURE(c->state == C_PREPARED && c->ep, SRDMA_ESTATE,
	       "connect needs a resolved client connection");
	ENSURE(len <= PDATA_MAX, SRDMA_EINVAL,
	       "connect private data is %zu bytes, at most %d fit", len,
	       PDATA_MAX);
	rc = fi_connect(c->ep, &c->dest, pdata, len);
	ENSURE(!rc, SRDMA_EFABRIC, "fi_connect: %s", fi_strerror(-rc));
	c->state = C_CONNECTING;
	srdma__loop_touch(c->cq_reg);
	return 0;
}

int srdma__ofi_disconnect(struct srdma__tp_conn *c)
{
	int rc;

	ENSURE(c->state != C_CLOSED, SRDMA_ECLOSED,
	       "the fabric connection is already closed");
	if (c->close_pending || c->state == C_CLOSING)
		return 0;
	if (c->ep && c->state != C_INIT && c->state != C_PREPARED) {
		rc = fi_shutdown(c->ep, 0);
		if (rc)
			srdma__log(c->o->tp->log, SRDMA_LOG_DEBUG,
				   "ofi: fi_shutdown: %s", fi_strerror(-rc));
	}
	c->state = C_CLOSING;
	/* on_closed follows from the loop (prepare hook sees it pending). */
	srdma__ofi_start_close(c, 0, "closed locally");
	return 0;
}

void srdma__ofi_conn_destroy(struct srdma__tp_conn *c)
{
	struct ofi *o;

	if (!c || c->dead)
		return;
	o = c->o;
	c->dead = true;
	srdma__loop_del(c->cq_reg);
	srdma__loop_del(c->eq_reg);
	c->cq_reg = c->eq_reg = NULL;
	/* Teardown reverses set-up: ep, cq, mrs, eq, domain. */
	srdma__ofi_close_fid(c->ep ? &c->ep->fid : NULL, "endpoint", o);
	c->ep = NULL;
	srdma__ofi_close_fid(&c->cq->fid, "cq", o);
	c->cq = NULL;
	while (c->mrs)
		srdma__ofi_mr_dereg(&c->mrs->pub);
	srdma__ofi_close_fid(&c->eq->fid, "eq", o);
	c->eq = NULL;
	srdma__ofi_close_fid(&c->domain->fid, "domain", o);
	c->domain = NULL;
	c->ring_count = 0;
	if (c->depth == 0)
		conn_free(c);
}

void srdma__ofi_conn_set_cb(struct srdma__tp_conn *c,
			    const struct srdma__tp_conn_cb *cb)
{
	c->cb = *cb;
}

uint32_t srdma__ofi_local_qpn(const struct srdma__tp_conn *c)
{
	return 0;
}

void srdma__ofi_set_psn(struct srdma__tp_conn *c, uint32_t sq_psn,
			uint32_t rq_psn)
{
}

int srdma__ofi_conn_info(const struct srdma__tp_conn *c,
			 struct srdma__tp_info *out)
{
	memset(out, 0, sizeof(*out));
	snprintf(out->provider, sizeof(out->provider), "%s",
		 c->o->info->fabric_attr->prov_name
			 ? c->o->info->fabric_attr->prov_name
			 : c->o->prov);
	out->max_inline = c->max_inline;
	return 0;
}

int srdma__ofi_accept(struct srdma__tp_conn *c, struct srdma__tp_connreq *req,
		      const void *pdata, size_t len)
{
	struct pending_req *p = req ? req->handle : NULL;
	int rc;

	ENSURE(p && p->info && !p->handled, SRDMA_EINVAL,
	       "accept needs a connect request not yet answered");
	ENSURE(c->state == C_INIT && !c->dead, SRDMA_ESTATE,
	       "accept needs a fresh connection");
	ENSURE(len <= PDATA_MAX, SRDMA_EINVAL,
	       "accept private data is %zu bytes, at most %d fit", len,
	       PDATA_MAX);
	GUARD(setup_ep(c, p->info));
	/* The endpoint owns the request's socket now: never reject it. */
	p->handled = true;
	rc = fi_accept(c->ep, pdata, len);
	if (rc) {
		srdma__ofi_close_fid(&c->ep->fid, "endpoint", c->o);
		c->ep = NULL;
		return srdma__err(SRDMA_EFABRIC, "fi_accept(%s): %s", req->peer,
				  fi_strerror(-rc));
	}
	c->state = C_ACCEPTING;
	srdma__loop_touch(c->cq_reg);
	return 0;
}
