/* SPDX-License-Identifier: MIT */
/*
 * libfabric FI_EP_MSG backend (provider "tcp" by default).
 *
 * Isolation (ReDMArk, USENIX Security 2021, mitigation "one PD per
 * connection"): every connection gets its own fi_domain, so a key registered
 * for one connection is unknown to every other endpoint. Keys are 64 random
 * bits chosen by us (mr_mode 0, FI_MR_PROV_KEY off); the provider's own keys
 * are 1, 2, 3...
 *
 * Progress: the tcp provider only moves when its CQ is read, so the CQ fd
 * handler always reads the CQ, and the prepare hook asks fi_trywait() before
 * the loop sleeps. A peer's close is seen on the EQ only after the CQ was
 * read, so one handler serves both fds: drain the CQ, then the EQ.
 *
 * Completions read outside a handler (a post that met -FI_EAGAIN drives
 * progress) are parked in a ring and delivered from the loop, so no callback
 * fires from inside the call that caused it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_eq.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>

#include "transport/transport.h"

#define OFI_API FI_VERSION(FI_MAJOR_VERSION, FI_MINOR_VERSION)
/* The session posts an RDMA write then a send notice and relies on the send
 * arriving after the write data is placed. */
#define ORDER_WANT (FI_ORDER_SAW | FI_ORDER_SAS | FI_ORDER_WAW | FI_ORDER_RAW)

enum {
	PDATA_MAX = 256,
	POST_RETRIES = 64,  /* -FI_EAGAIN from a post: progress and retry */
	CQ_BATCH = 16,	    /* entries per fi_cq_read */
	HANDLER_PASSES = 4, /* CQ rounds per handler call before yielding */
	MR_KEY_TRIES = 16,  /* random key collisions are astronomically rare */
	EQ_SIZE = 16,
	DETAIL_LEN = 256,
};

struct ofi {
	struct srdma__tp *tp;
	struct fi_info *info; /* template: provider, caps, attrs */
	struct fid_fabric *fabric;
	uint64_t order;	      /* tx msg_order granted */
	uint64_t write_flags; /* FI_DELIVERY_COMPLETE when usable */
	char prov[32];
};

enum cstate {
	C_INIT,	       /* domain and CQ exist, no endpoint */
	C_PREPARED,    /* client: endpoint enabled, not connecting yet */
	C_ACCEPTING,   /* server: fi_accept sent */
	C_CONNECTING,  /* client: fi_connect sent */
	C_ESTABLISHED, /* FI_CONNECTED seen */
	C_CLOSING,     /* disconnect() called, on_closed pending */
	C_CLOSED,      /* on_closed delivered (or being delivered) */
};

struct op {
	struct fi_context2 ctx; /* first: covers FI_CONTEXT/FI_CONTEXT2 modes */
	uint64_t wr_id;
	enum srdma__tp_op type;
	bool busy;
	struct op *next_free;
};

struct done {
	struct op *op;
	int status;
	uint32_t len;
};

struct ofi_mr {
	struct srdma__tp_mr pub; /* first: handed out as srdma__tp_mr */
	struct fid_mr *mr;
	struct srdma__tp_conn *c;
	struct ofi_mr *prev, *next;
};

struct srdma__tp_conn {
	struct ofi *o;
	struct srdma__tp_conn_cb cb;
	struct srdma__tp_conn_attr attr;
	enum cstate state;

	struct fid_domain *domain;
	struct fid_cq *cq;
	struct fid_eq *eq;
	struct fid_ep *ep;
	struct srdma__loop_fd *cq_reg, *eq_reg;

	struct op *ops; /* preallocated pool: no malloc per op */
	struct op *free_ops;
	uint32_t nops;
	struct done *ring; /* read from the CQ, not yet delivered */
	uint32_t ring_head, ring_count;

	struct ofi_mr *mrs;
	struct sockaddr_storage dest; /* client: the peer resolve() found */
	size_t inject_size;
	uint32_t max_inline;

	int depth; /* handlers of this conn on the stack */
	bool dead; /* conn_destroy called: no more callbacks */
	bool close_pending;
	bool peer_dropped; /* the peer, not us, ended the connection */
	int rma_lost;	   /* RDMA ops flushed because the peer dropped us */
	int close_status;
	char close_detail[DETAIL_LEN];
};

struct pending_req {
	struct fi_info *info;
	bool handled;
};

struct srdma__tp_listener {
	struct ofi *o;
	struct srdma__tp_listener_cb cb;
	struct fid_pep *pep;
	struct fid_eq *eq;
	struct srdma__loop_fd *reg;
	uint16_t port;
	int depth;
	bool dead;
};

/* ---- helpers ---------------------------------------------------------- */

static struct fi_info *make_hints(const char *prov, const char *device,
				  uint64_t order)
{
	struct fi_info *h = fi_allocinfo();

	if (!h)
		return NULL;
	h->ep_attr->type = FI_EP_MSG;
	h->caps = FI_MSG | FI_RMA;
	h->mode = FI_CONTEXT | FI_CONTEXT2;
	/* No mode bits: the application picks keys (no FI_MR_PROV_KEY) and
	 * needs no local registration for anything the provider can do. */
	h->domain_attr->mr_mode = 0;
	h->domain_attr->threading = FI_THREAD_DOMAIN;
	h->tx_attr->msg_order = order;
	h->rx_attr->msg_order = order;
	h->fabric_attr->prov_name = strdup(prov);
	if (device && *device)
		h->domain_attr->name = strdup(device);
	if (!h->fabric_attr->prov_name ||
	    (device && *device && !h->domain_attr->name)) {
		fi_freeinfo(h);
		return NULL;
	}
	return h;
}

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

static int close_fid(struct fid *f, const char *what, struct ofi *o)
{
	int rc;

	if (!f)
		return 0;
	rc = fi_close(f);
	if (rc)
		srdma__log(o->tp->log, SRDMA_LOG_WARN, "ofi: fi_close(%s): %s",
			   what, fi_strerror(-rc));
	return rc;
}

/* Completion error -> SRDMA code. */
static int map_cq_err(int err)
{
	switch (err) {
	case FI_ECANCELED:
	case FI_ECONNRESET:
	case FI_ECONNABORTED:
	case FI_ENOTCONN:
	case EPIPE:
	case FI_ESHUTDOWN:
		return SRDMA_ECLOSED;
	case FI_EACCES:
	case FI_EPERM:
	case FI_EKEYREJECTED:
	case FI_EREMOTEIO:
	case FI_EFAULT:
		return SRDMA_EREMOTE_ACCESS;
	default:
		return SRDMA_EFABRIC;
	}
}

/* ---- open / close ----------------------------------------------------- */

static int ofi_open(struct srdma__tp *tp, const char *provider,
		    const char *device)
{
	const char *prov = provider && *provider ? provider : "tcp";
	struct fi_info *hints, *info = NULL;
	struct ofi *o;
	int rc, ret;

	o = calloc(1, sizeof(*o));
	ENSURE(o, SRDMA_ENOMEM, "out of memory opening libfabric");
	o->tp = tp;
	snprintf(o->prov, sizeof(o->prov), "%s", prov);
	o->order = ORDER_WANT;
	hints = make_hints(prov, device, o->order);
	if (!hints) {
		ret = srdma__err(SRDMA_ENOMEM,
				 "out of memory for fi_info hints");
		goto out_free_o;
	}
	rc = fi_getinfo(OFI_API, NULL, NULL, 0, hints, &info);
	if (rc == -FI_ENODATA) {
		/* Ordering not offered: continue, but say so loudly. */
		hints->tx_attr->msg_order = hints->rx_attr->msg_order = 0;
		rc = fi_getinfo(OFI_API, NULL, NULL, 0, hints, &info);
		if (!rc) {
			o->order = info->tx_attr->msg_order;
			srdma__log(tp->log, SRDMA_LOG_WARN,
				   "ofi: provider %s does not guarantee "
				   "send-after-write ordering",
				   prov);
		}
	}
	fi_freeinfo(hints);
	if (rc) {
		ret = srdma__err(SRDMA_ENODEV,
				 "libfabric provider \"%s\"%s%s offers no "
				 "FI_EP_MSG endpoint with FI_MSG|FI_RMA and "
				 "application-chosen keys (%s); `fi_info -t "
				 "FI_EP_MSG` lists the providers available",
				 prov, device && *device ? " on " : "",
				 device && *device ? device : "",
				 fi_strerror(-rc));
		goto out_free_o;
	}
	if (info->domain_attr->mr_mode & FI_MR_PROV_KEY) {
		ret = srdma__err(
			SRDMA_ENODEV,
			"libfabric provider \"%s\" insists on choosing "
			"memory keys itself (predictable keys are "
			"refused)",
			prov);
		goto out_free_info;
	}
	o->info = info;
	/* FI_DELIVERY_COMPLETE: a write to a bad key drops the connection
	 * while the default completion would still report success. */
	o->write_flags = FI_DELIVERY_COMPLETE;
	rc = fi_fabric(info->fabric_attr, &o->fabric, o);
	if (rc) {
		ret = srdma__err(SRDMA_ENODEV, "fi_fabric(%s): %s", prov,
				 fi_strerror(-rc));
		goto out_free_info;
	}
	srdma__log(tp->log, SRDMA_LOG_DEBUG,
		   "ofi: provider %s, mr_mode 0x%x, msg_order 0x%" PRIx64, prov,
		   (unsigned)info->domain_attr->mr_mode, o->order);
	tp->priv = o;
	return 0;

out_free_info:
	fi_freeinfo(info);
out_free_o:
	free(o);
	return ret;
}

static void ofi_close(struct srdma__tp *tp)
{
	struct ofi *o;

	if (!tp || !tp->priv)
		return;
	o = tp->priv;
	close_fid(o->fabric ? &o->fabric->fid : NULL, "fabric", o);
	fi_freeinfo(o->info);
	free(o);
	tp->priv = NULL;
}

/* ---- connection: completions and events ------------------------------- */

static struct op *op_get(struct srdma__tp_conn *c)
{
	struct op *op = c->free_ops;

	if (!op)
		return NULL;
	c->free_ops = op->next_free;
	op->busy = true;
	return op;
}

static void op_put(struct srdma__tp_conn *c, struct op *op)
{
	op->busy = false;
	op->next_free = c->free_ops;
	c->free_ops = op;
}

static struct op *own_op(struct srdma__tp_conn *c, void *ctx)
{
	struct op *op = ctx;

	if (!op || op < c->ops || op >= c->ops + c->nops || !op->busy)
		return NULL;
	return op;
}

/*
 * The tcp provider answers a remote access error (bad key, out-of-range
 * address) by dropping the connection: the initiator only sees its RDMA ops
 * flushed. Report those as remote access errors, not as a plain close.
 */
static int flush_status(struct srdma__tp_conn *c, const struct op *op,
			int status)
{
	if (status == SRDMA_ECLOSED && c->peer_dropped &&
	    (op->type == SRDMA_TP_OP_WRITE || op->type == SRDMA_TP_OP_READ)) {
		c->rma_lost++;
		return SRDMA_EREMOTE_ACCESS;
	}
	return status;
}

static void ring_push(struct srdma__tp_conn *c, void *ctx, int status,
		      uint32_t len)
{
	struct op *op = own_op(c, ctx);
	struct done *d;

	if (!op) /* e.g. remote CQ data: nothing of ours */
		return;
	d = &c->ring[(c->ring_head + c->ring_count) % c->nops];
	d->op = op;
	d->status = flush_status(c, op, status);
	d->len = len;
	c->ring_count++;
}

static void start_close(struct srdma__tp_conn *c, int status,
			const char *detail)
{
	if (c->close_pending || c->state == C_CLOSED)
		return;
	c->close_pending = true;
	c->close_status = status;
	snprintf(c->close_detail, sizeof(c->close_detail), "%s", detail);
	srdma__loop_touch(c->cq_reg); /* the prepare hook finishes it */
}

/* Reads the CQ (driving progress) into the ring. Returns entries read. */
static int drain_cq(struct srdma__tp_conn *c)
{
	struct fi_cq_data_entry ent[CQ_BATCH];
	ssize_t n, i;
	int got = 0;

	while (c->cq && c->ring_count < c->nops) {
		size_t room = c->nops - c->ring_count;

		n = fi_cq_read(c->cq, ent, room < CQ_BATCH ? room : CQ_BATCH);
		if (n == -FI_EAGAIN)
			break;
		if (n == -FI_EAVAIL) {
			struct fi_cq_err_entry err;
			char buf[128];

			memset(&err, 0, sizeof(err));
			n = fi_cq_readerr(c->cq, &err, 0);
			if (n == -FI_EAGAIN)
				break;
			if (n < 0)
				goto out_fail;
			srdma__log(c->o->tp->log, SRDMA_LOG_DEBUG,
				   "ofi: completion error: %s (%s)",
				   fi_strerror(err.err),
				   fi_cq_strerror(c->cq, err.prov_errno,
						  err.err_data, buf,
						  sizeof(buf)));
			/* A flush we did not cause: the peer dropped us. */
			if (err.err == FI_ECANCELED && c->state != C_CLOSING &&
			    c->state != C_CLOSED)
				c->peer_dropped = true;
			ring_push(c, err.op_context, map_cq_err(err.err), 0);
			got++;
			continue;
		}
		if (n < 0)
			goto out_fail;
		for (i = 0; i < n; i++)
			ring_push(c, ent[i].op_context, 0,
				  (uint32_t)ent[i].len);
		got += (int)n;
	}
	return got;

out_fail:
	/* A broken CQ fails the connection as a whole (DESIGN.md §3.6). */
	srdma__log(c->o->tp->log, SRDMA_LOG_WARN, "ofi: fi_cq_read: %s",
		   fi_strerror((int)-n));
	start_close(c, SRDMA_EFABRIC, "reading the completion queue failed");
	return got;
}

static void deliver(struct srdma__tp_conn *c)
{
	while (c->ring_count && !c->dead) {
		struct done d = c->ring[c->ring_head];
		struct srdma__tp_cqe e = {
			.wr_id = d.op->wr_id,
			.op = d.op->type,
			.status = d.status,
			.len = d.op->type == SRDMA_TP_OP_RECV ? d.len : 0,
		};

		c->ring_head = (c->ring_head + 1) % c->nops;
		c->ring_count--;
		op_put(c, d.op); /* the callback may post again */
		c->cb.on_cqe(c->cb.arg, &e);
	}
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
		deliver(c);
	} while (!c->dead && drain_cq(c) > 0);
	if (c->dead)
		return;
	close_fid(c->ep ? &c->ep->fid : NULL, "endpoint", c->o);
	c->ep = NULL;
	do {
		deliver(c);
	} while (!c->dead && drain_cq(c) > 0);
	for (i = 0; i < c->nops && !c->dead; i++) {
		struct op *op = &c->ops[i];
		struct srdma__tp_cqe e;

		if (!op->busy)
			continue;
		e = (struct srdma__tp_cqe){
			.wr_id = op->wr_id,
			.op = op->type,
			.status = flush_status(c, op, SRDMA_ECLOSED)};
		op_put(c, op);
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
			start_close(c, SRDMA_EFABRIC, "fi_eq_readerr failed");
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
		start_close(c, SRDMA_ECONNREFUSED, detail);
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
		start_close(c, SRDMA_EUNREACHABLE, detail);
		break;
	default:
		start_close(c,
			    c->state == C_ESTABLISHED ? SRDMA_ECLOSED
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
			start_close(c, SRDMA_EFABRIC, "fi_eq_read failed");
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
			start_close(c, 0,
				    "the peer closed the fabric connection");
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
		int got = drain_cq(c);
		bool had = c->ring_count > 0;

		deliver(c);
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

static int ofi_conn_create(struct srdma__tp *tp,
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
		op_put(c, &c->ops[i]);
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
	close_fid(&c->eq->fid, "eq", o);
out_close_cq:
	close_fid(&c->cq->fid, "cq", o);
out_close_domain:
	close_fid(&c->domain->fid, "domain", o);
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
		close_fid(&c->ep->fid, "endpoint", c->o);
		c->ep = NULL;
		return srdma__err(SRDMA_EFABRIC, "binding the endpoint: %s",
				  fi_strerror(-rc));
	}
	return 0;
}

static int ofi_resolve(struct srdma__tp_conn *c, const char *host,
		       uint16_t port, int timeout_ms)
{
	struct fi_info *hints, *info = NULL;
	char svc[8];
	int rc, ret;

	ENSURE(c->state == C_INIT && !c->attr.server, SRDMA_ESTATE,
	       "resolve is for a fresh client connection");
	ENSURE(host && *host, SRDMA_EINVAL, "resolve needs a host");
	hints = make_hints(c->o->prov, NULL, c->o->order);
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

static void ofi_set_port(struct srdma__tp_conn *c, uint16_t port)
{
	if (c->dest.ss_family == AF_INET)
		((struct sockaddr_in *)&c->dest)->sin_port = htons(port);
	else if (c->dest.ss_family == AF_INET6)
		((struct sockaddr_in6 *)&c->dest)->sin6_port = htons(port);
}

static int ofi_connect(struct srdma__tp_conn *c, const void *pdata, size_t len)
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

static int ofi_disconnect(struct srdma__tp_conn *c)
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
	start_close(c, 0, "closed locally");
	return 0;
}

static void ofi_mr_dereg(struct srdma__tp_mr *pub);

static void ofi_conn_destroy(struct srdma__tp_conn *c)
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
	close_fid(c->ep ? &c->ep->fid : NULL, "endpoint", o);
	c->ep = NULL;
	close_fid(&c->cq->fid, "cq", o);
	c->cq = NULL;
	while (c->mrs)
		ofi_mr_dereg(&c->mrs->pub);
	close_fid(&c->eq->fid, "eq", o);
	c->eq = NULL;
	close_fid(&c->domain->fid, "domain", o);
	c->domain = NULL;
	c->ring_count = 0;
	if (c->depth == 0)
		conn_free(c);
}

/*
 * Back to C_INIT for the next client (session/respool.c): the endpoint goes,
 * every completion and event still queued is read and dropped, the op pool
 * is whole again. The domain, CQ, EQ and the caller's local registrations
 * stay; a remotely accessible registration must already be gone.
 */
static int ofi_conn_reset(struct srdma__tp_conn *c)
{
	struct fi_cq_data_entry ent[CQ_BATCH];
	struct fi_cq_err_entry cerr;
	struct fi_eq_err_entry eerr;
	uint8_t ev[sizeof(struct fi_eq_cm_entry) + PDATA_MAX];
	uint32_t event, i;
	ssize_t n;
	int guard;

	ENSURE(c && !c->dead && c->attr.server && c->depth == 0, SRDMA_ESTATE,
	       "reset: only an idle server connection");
	ENSURE(c->state == C_INIT || c->state == C_CLOSED, SRDMA_ESTATE,
	       "reset: the fabric connection is still live");
	for (struct ofi_mr *m = c->mrs; m; m = m->next)
		ENSURE(m->pub.key == 0, SRDMA_ESTATE,
		       "reset: a remotely accessible registration is still "
		       "live");
	close_fid(c->ep ? &c->ep->fid : NULL, "endpoint", c->o);
	c->ep = NULL;
	for (guard = 0; guard < 1 << 16; guard++) {
		n = fi_cq_read(c->cq, ent, CQ_BATCH);
		if (n == -FI_EAVAIL) {
			memset(&cerr, 0, sizeof(cerr));
			n = fi_cq_readerr(c->cq, &cerr, 0);
		}
		if (n == -FI_EAGAIN)
			break;
		ENSURE(n >= 0, SRDMA_EFABRIC, "reset: fi_cq_read: %s",
		       fi_strerror((int)-n));
	}
	for (guard = 0; guard < 1 << 16; guard++) {
		n = fi_eq_read(c->eq, &event, ev, sizeof(ev), 0);
		if (n == -FI_EAVAIL) {
			memset(&eerr, 0, sizeof(eerr));
			n = fi_eq_readerr(c->eq, &eerr, 0);
		}
		if (n == -FI_EAGAIN)
			break;
		ENSURE(n >= 0, SRDMA_EFABRIC, "reset: fi_eq_read: %s",
		       fi_strerror((int)-n));
	}
	c->free_ops = NULL;
	for (i = c->nops; i-- > 0;)
		op_put(c, &c->ops[i]);
	c->ring_head = c->ring_count = 0;
	c->close_pending = c->peer_dropped = false;
	c->rma_lost = 0;
	c->close_status = 0;
	c->close_detail[0] = '\0';
	c->state = C_INIT;
	srdma__loop_touch(c->cq_reg);
	return 0;
}

static void ofi_conn_set_cb(struct srdma__tp_conn *c,
			    const struct srdma__tp_conn_cb *cb)
{
	c->cb = *cb;
}

static uint32_t ofi_local_qpn(const struct srdma__tp_conn *c)
{
	return 0;
}

static void ofi_set_psn(struct srdma__tp_conn *c, uint32_t sq_psn,
			uint32_t rq_psn)
{
}

static int ofi_conn_info(const struct srdma__tp_conn *c,
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

/* ---- listener ----------------------------------------------------------- */

static void listener_free(struct srdma__tp_listener *l)
{
	close_fid(l->pep ? &l->pep->fid : NULL, "passive endpoint", l->o);
	close_fid(l->eq ? &l->eq->fid : NULL, "listener eq", l->o);
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

static int ofi_listen(struct srdma__tp *tp, const char *host, uint16_t port,
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

	ENSURE(o, SRDMA_ESTATE, "the ofi transport is not open");
	ENSURE(cb && cb->on_connreq, SRDMA_EINVAL,
	       "listen needs an on_connreq callback");
	l = calloc(1, sizeof(*l));
	ENSURE(l, SRDMA_ENOMEM, "out of memory for a fabric listener");
	l->o = o;
	l->cb = *cb;
	hints = make_hints(o->prov, NULL, o->order);
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
	close_fid(&l->eq->fid, "listener eq", o);
	l->eq = NULL;
out_close_pep:
	close_fid(&l->pep->fid, "passive endpoint", o);
	l->pep = NULL;
out_free_l:
	free(l);
	return ret;
}

static uint16_t ofi_listener_port(const struct srdma__tp_listener *l)
{
	return l ? l->port : 0;
}

static void ofi_listener_destroy(struct srdma__tp_listener *l)
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

static int ofi_accept(struct srdma__tp_conn *c, struct srdma__tp_connreq *req,
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
		close_fid(&c->ep->fid, "endpoint", c->o);
		c->ep = NULL;
		return srdma__err(SRDMA_EFABRIC, "fi_accept(%s): %s", req->peer,
				  fi_strerror(-rc));
	}
	c->state = C_ACCEPTING;
	srdma__loop_touch(c->cq_reg);
	return 0;
}

static int ofi_reject(struct srdma__tp_listener *l,
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

/* ---- memory registration ------------------------------------------------ */

static int ofi_mr_reg(struct srdma__tp_conn *c, void *buf, size_t len,
		      unsigned access, struct srdma__tp_mr **out)
{
	const struct fi_domain_attr *da = c->o->info->domain_attr;
	uint64_t acc = FI_SEND | FI_RECV | FI_READ | FI_WRITE;
	struct ofi_mr *m;
	uint64_t key = 0;
	int rc = -FI_ENOKEY, tries;

	ENSURE(!c->dead && c->domain, SRDMA_ESTATE,
	       "mr_reg on a destroyed connection");
	ENSURE(buf && len, SRDMA_EINVAL, "mr_reg needs a buffer");
	if (access & SRDMA_TP_REMOTE_READ)
		acc |= FI_REMOTE_READ;
	if (access & SRDMA_TP_REMOTE_WRITE)
		acc |= FI_REMOTE_WRITE;
	m = calloc(1, sizeof(*m));
	ENSURE(m, SRDMA_ENOMEM, "out of memory for a registration");
	/* 64 random bits as the key (ReDMArk: unpredictable rkeys); retry
	 * on the (astronomically rare) collision inside this domain. */
	for (tries = 0; tries < MR_KEY_TRIES && rc == -FI_ENOKEY; tries++) {
		if (RAND_bytes((unsigned char *)&key, sizeof(key)) != 1) {
			free(m);
			return srdma__err(SRDMA_ESYS,
					  "RAND_bytes failed for a memory key");
		}
		if (da->mr_key_size < sizeof(key))
			key &= (UINT64_C(1) << (8 * da->mr_key_size)) - 1;
		if (!key)
			continue;
		rc = fi_mr_reg(c->domain, buf, len, acc, 0, key, 0, &m->mr, m);
	}
	if (rc) {
		free(m);
		return srdma__err(SRDMA_EFABRIC, "fi_mr_reg(%zu bytes): %s",
				  len, fi_strerror(-rc));
	}
	if (da->mr_mode & FI_MR_PROV_KEY)
		key = fi_mr_key(m->mr); /* refused at open; kept for safety */
	m->pub.buf = buf;
	m->pub.len = len;
	/* Without FI_MR_VIRT_ADDR the peer addresses the region from 0. */
	m->pub.addr = da->mr_mode & FI_MR_VIRT_ADDR ? (uintptr_t)buf : 0;
	m->pub.key = access & (SRDMA_TP_REMOTE_READ | SRDMA_TP_REMOTE_WRITE)
			     ? key
			     : 0;
	m->pub.desc = fi_mr_desc(m->mr);
	m->c = c;
	m->next = c->mrs;
	if (c->mrs)
		c->mrs->prev = m;
	c->mrs = m;
	*out = &m->pub;
	return 0;
}

static void ofi_mr_dereg(struct srdma__tp_mr *pub)
{
	struct ofi_mr *m = (struct ofi_mr *)pub;

	if (!m)
		return;
	close_fid(&m->mr->fid, "mr", m->c->o);
	if (m->prev)
		m->prev->next = m->next;
	else
		m->c->mrs = m->next;
	if (m->next)
		m->next->prev = m->prev;
	free(m);
}

/* ---- data path ---------------------------------------------------------- */

struct post_args {
	enum srdma__tp_op type;
	struct srdma__tp_mr *mr;
	void *buf;
	size_t len;
	uint64_t raddr, rkey;
	unsigned flags;
};

static ssize_t issue(struct srdma__tp_conn *c, struct op *op,
		     const struct post_args *a)
{
	void *desc = a->mr ? a->mr->desc : NULL;
	struct iovec iov = {.iov_base = a->buf, .iov_len = a->len};
	struct fi_rma_iov rma = {
		.addr = a->raddr, .len = a->len, .key = a->rkey};

	switch (a->type) {
	case SRDMA_TP_OP_SEND:
		if ((a->flags & SRDMA_TP_F_INLINE) &&
		    a->len <= c->inject_size) {
			struct fi_msg msg = {.msg_iov = &iov,
					     .desc = &desc,
					     .iov_count = 1,
					     .context = op};
			return fi_sendmsg(c->ep, &msg,
					  FI_INJECT | FI_COMPLETION);
		}
		return fi_send(c->ep, a->buf, a->len, desc, 0, op);
	case SRDMA_TP_OP_RECV:
		return fi_recv(c->ep, a->buf, a->len, desc, 0, op);
	case SRDMA_TP_OP_WRITE: {
		struct fi_msg_rma msg = {.msg_iov = &iov,
					 .desc = &desc,
					 .iov_count = 1,
					 .rma_iov = &rma,
					 .rma_iov_count = 1,
					 .context = op};
		return fi_writemsg(c->ep, &msg,
				   FI_COMPLETION | c->o->write_flags);
	}
	case SRDMA_TP_OP_READ:
		return fi_read(c->ep, a->buf, a->len, desc, 0, a->raddr,
			       a->rkey, op);
	}
	return -FI_EINVAL;
}

static const char *op_name(enum srdma__tp_op t)
{
	static const char *const names[] = {"?", "fi_send", "fi_recv",
					    "fi_write", "fi_read"};
	return t <= SRDMA_TP_OP_READ ? names[t] : "?";
}

static int post(struct srdma__tp_conn *c, const struct post_args *a,
		uint64_t wr_id)
{
	struct op *op;
	ssize_t rc;
	int tries;

	ENSURE(!c->dead && c->state != C_CLOSED && c->state != C_CLOSING &&
		       !c->close_pending,
	       SRDMA_ECLOSED, "%s on a closed fabric connection",
	       op_name(a->type));
	ENSURE(c->ep, SRDMA_ESTATE, "%s before the connection has an endpoint",
	       op_name(a->type));
	op = op_get(c);
	ENSURE(op, SRDMA_EAGAIN, "all %u work requests are in flight", c->nops);
	/* New work: fi_trywait must run again before the loop sleeps. */
	srdma__loop_touch(c->cq_reg);
	op->wr_id = wr_id;
	op->type = a->type;
	for (tries = 0;; tries++) {
		rc = issue(c, op, a);
		if (rc != -FI_EAGAIN || tries >= POST_RETRIES)
			break;
		/* Drive progress; completions wait in the ring. */
		drain_cq(c);
	}
	if (rc) {
		op_put(c, op);
		ENSURE(rc != -FI_EAGAIN, SRDMA_EAGAIN,
		       "%s: the provider's queue stays full", op_name(a->type));
		return srdma__err(SRDMA_EFABRIC, "%s(%zu bytes): %s",
				  op_name(a->type), a->len,
				  fi_strerror((int)-rc));
	}
	return 0;
}

static int ofi_post_recv(struct srdma__tp_conn *c, struct srdma__tp_mr *mr,
			 void *buf, size_t len, uint64_t wr_id)
{
	struct post_args a = {
		.type = SRDMA_TP_OP_RECV, .mr = mr, .buf = buf, .len = len};

	return post(c, &a, wr_id);
}

static int ofi_post_send(struct srdma__tp_conn *c, struct srdma__tp_mr *mr,
			 const void *buf, size_t len, uint64_t wr_id,
			 unsigned flags)
{
	struct post_args a = {.type = SRDMA_TP_OP_SEND,
			      .mr = mr,
			      .buf = (void *)buf,
			      .len = len,
			      .flags = flags};

	return post(c, &a, wr_id);
}

static int ofi_post_write(struct srdma__tp_conn *c, struct srdma__tp_mr *mr,
			  const void *buf, size_t len, uint64_t raddr,
			  uint64_t rkey, uint64_t wr_id, unsigned flags)
{
	struct post_args a = {.type = SRDMA_TP_OP_WRITE,
			      .mr = mr,
			      .buf = (void *)buf,
			      .len = len,
			      .raddr = raddr,
			      .rkey = rkey,
			      .flags = flags};

	return post(c, &a, wr_id);
}

static int ofi_post_read(struct srdma__tp_conn *c, struct srdma__tp_mr *mr,
			 void *buf, size_t len, uint64_t raddr, uint64_t rkey,
			 uint64_t wr_id, unsigned flags)
{
	struct post_args a = {.type = SRDMA_TP_OP_READ,
			      .mr = mr,
			      .buf = buf,
			      .len = len,
			      .raddr = raddr,
			      .rkey = rkey,
			      .flags = flags};

	return post(c, &a, wr_id);
}

const struct srdma__tp_ops srdma__ofi_ops = {
	.name = "ofi",
	.open = ofi_open,
	.close = ofi_close,
	.listen = ofi_listen,
	.listener_port = ofi_listener_port,
	.listener_destroy = ofi_listener_destroy,
	.accept = ofi_accept,
	.reject = ofi_reject,
	.conn_create = ofi_conn_create,
	.resolve = ofi_resolve,
	.local_qpn = ofi_local_qpn,
	.set_psn = ofi_set_psn,
	.set_port = ofi_set_port,
	.connect = ofi_connect,
	.disconnect = ofi_disconnect,
	.conn_destroy = ofi_conn_destroy,
	.conn_info = ofi_conn_info,
	.conn_reset = ofi_conn_reset,
	.conn_set_cb = ofi_conn_set_cb,
	.mr_reg = ofi_mr_reg,
	.mr_dereg = ofi_mr_dereg,
	.post_recv = ofi_post_recv,
	.post_send = ofi_post_send,
	.post_write = ofi_post_write,
	.post_read = ofi_post_read,
};
