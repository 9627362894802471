/* SPDX-License-Identifier: MIT */
/*
 * verbs backend: rdma_cm events (read from the event channel, copied,
 * acknowledged, then dispatched: connect requests, address/route
 * resolution, connect response, errors, disconnects), the deferred-work
 * eventfd, and the listener (listen, port, destroy, reject).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "transport/verbs/verbs_int.h"

/* ---- rdma_cm events ----------------------------------------------------- */

struct vev {
	enum rdma_cm_event_type type;
	int status;
	struct rdma_cm_id *id, *listen_id;
	uint8_t pdata[256];
	size_t pdata_len;
	uint32_t qp_num;
	uint8_t initiator_depth, responder_resources;
};

static void on_connect_request(struct vtp *v, struct vev *ev)
{
	struct srdma__tp_listener *l = ev->listen_id->context;
	struct srdma__tp_connreq req;
	struct rdma_cm_id *id = ev->id;
	struct vdev *d = srdma__verbs_dev_of(v, id->verbs);

	memset(&req, 0, sizeof(req));
	memcpy(req.pdata, ev->pdata, ev->pdata_len);
	req.pdata_len = ev->pdata_len;
	req.initiator_qpn = ev->qp_num;
#ifdef SRDMA_TEST_HOOKS
	if (d && (d->imitate & SRDMA_VI_NO_QPN))
		req.initiator_qpn = 0; /* what an iWARP request carries */
#endif
	srdma__verbs_fmt_addr(rdma_get_peer_addr(id), req.peer,
			      sizeof(req.peer));
	req.handle = id;
	v->req_initiator_depth = ev->initiator_depth;
	v->req_responder_resources = ev->responder_resources;
	if (srdma__verbs_dev_check(d) < 0) {
		/* A wildcard listener hears every device, iWARP ones too. */
		srdma__log(lg(v), SRDMA_LOG_INFO,
			   "verbs: connect request from %s refused: %s",
			   req.peer, srdma_error_detail());
	} else if (l && l->kind == KIND_LISTENER && l->cb.on_connreq) {
		l->cb.on_connreq(l->cb.arg, &req);
	}
	if (req.handle) {
		/* Neither accepted nor rejected: refuse, free the id. */
		srdma__log(lg(v), SRDMA_LOG_INFO,
			   "verbs: connect request from %s not accepted",
			   req.peer);
		rdma_reject(id, NULL, 0);
		rdma_destroy_id(id);
	}
}

static void prepare_client(struct srdma__tp_conn *c)
{
	struct vdev *d = srdma__verbs_dev_of(c->v, c->id->verbs);
	int rc;

	rc = srdma__verbs_dev_check(d);
	if (rc < 0) {
		rc = srdma__err(rc, "the route to %s: %s", c->peer,
				srdma_error_detail());
		goto out_fail;
	}
	rc = srdma__verbs_res_alloc(c, d);
	if (rc < 0)
		goto out_fail;
	rc = srdma__verbs_qp_create(c);
	if (rc < 0)
		goto out_free_res;
	rc = srdma__verbs_qp_move(c, IBV_QPS_INIT);
	if (rc < 0)
		goto out_free_res;
	c->state = VS_PREPARED;
	srdma__verbs_tell_prepared(c, 0);
	return;

out_free_res:
	srdma__verbs_res_free(c);
out_fail:
	c->state = VS_CLOSED;
	srdma__verbs_tell_prepared(c, rc);
}

static void fail_prepare(struct srdma__tp_conn *c, int err, const char *what,
			 int status)
{
	int rc = srdma__err(err, "%s for %s failed (status %d: %s)", what,
			    c->peer, status,
			    strerror(status < 0 ? -status : status));

	c->state = VS_CLOSED;
	srdma__verbs_tell_prepared(c, rc);
}

static void on_connect_response(struct srdma__tp_conn *c, struct vev *ev)
{
	int rc;

	c->remote_qpn = ev->qp_num;
	rc = srdma__verbs_qp_move(c, IBV_QPS_RTR);
	if (rc == 0)
		rc = srdma__verbs_qp_move(c, IBV_QPS_RTS);
	if (rc == 0)
		rc = srdma__verbs_bind_pending(c);
	if (rc == 0 && rdma_establish(c->id))
		rc = srdma__err(SRDMA_EFABRIC, "rdma_establish to %s: %s",
				c->peer, strerror(errno));
	if (rc < 0) {
		char d[192];
		srdma__err_copy(d, sizeof(d));
		rdma_disconnect(c->id);
		srdma__verbs_begin_close(c, rc, d);
		return;
	}
	srdma__verbs_tell_established(c);
}

static bool terminal_event(enum rdma_cm_event_type t)
{
	return t == RDMA_CM_EVENT_DISCONNECTED || t == RDMA_CM_EVENT_REJECTED ||
	       t == RDMA_CM_EVENT_CONNECT_ERROR ||
	       t == RDMA_CM_EVENT_UNREACHABLE ||
	       t == RDMA_CM_EVENT_DEVICE_REMOVAL ||
	       t == RDMA_CM_EVENT_TIMEWAIT_EXIT;
}

static void conn_event(struct srdma__tp_conn *c, struct vev *ev)
{
	char d[192];

	if (c->destroyed) {
		/* Zombie: waiting for the CM to finish with the id. */
		if (terminal_event(ev->type))
			c->reap = true;
		return;
	}
	if (ev->type == RDMA_CM_EVENT_TIMEWAIT_EXIT)
		c->tw_exited = true;
	if (c->timewait) {
		/* Reset for the pool, the CM still in TIMEWAIT on the id:
		 * only its end (or the device's) frees the QP number. */
		if (ev->type == RDMA_CM_EVENT_DEVICE_REMOVAL && c->dev)
			c->dev->dead = true;
		if (ev->type == RDMA_CM_EVENT_TIMEWAIT_EXIT ||
		    ev->type == RDMA_CM_EVENT_DEVICE_REMOVAL)
			srdma__verbs_timewait_over(c);
		return;
	}
	switch (ev->type) {
	case RDMA_CM_EVENT_ADDR_RESOLVED:
		if (c->state != VS_RESOLVING)
			break;
		if (rdma_resolve_route(
			    c->id,
			    c->v->tp->opts.route_timeout_ms
				    ? (int)c->v->tp->opts.route_timeout_ms
				    : ROUTE_TIMEOUT_MS)) {
			int rc = srdma__err(SRDMA_EUNREACHABLE,
					    "rdma_resolve_route to %s: %s",
					    c->peer, strerror(errno));
			c->state = VS_CLOSED;
			srdma__verbs_tell_prepared(c, rc);
		}
		break;
	case RDMA_CM_EVENT_ROUTE_RESOLVED:
		if (c->state == VS_RESOLVING)
			prepare_client(c);
		break;
	case RDMA_CM_EVENT_ADDR_ERROR:
		if (c->state == VS_RESOLVING)
			fail_prepare(c, SRDMA_EUNREACHABLE,
				     "RDMA address resolution", ev->status);
		break;
	case RDMA_CM_EVENT_ROUTE_ERROR:
		if (c->state == VS_RESOLVING)
			fail_prepare(c, SRDMA_EUNREACHABLE,
				     "RDMA route resolution", ev->status);
		break;
	case RDMA_CM_EVENT_CONNECT_RESPONSE:
		if (c->state == VS_CONNECTING)
			on_connect_response(c, ev);
		break;
	case RDMA_CM_EVENT_ESTABLISHED:
		if (c->state == VS_ACCEPTING)
			srdma__verbs_tell_established(c);
		break;
	case RDMA_CM_EVENT_REJECTED:
		snprintf(d, sizeof(d),
			 "the server at %s rejected the connection (reason %d)",
			 c->peer, ev->status);
		if (c->state == VS_RESOLVING)
			fail_prepare(c, SRDMA_ECONNREFUSED, "connect",
				     ev->status);
		else
			srdma__verbs_begin_close(c, SRDMA_ECONNREFUSED, d);
		break;
	case RDMA_CM_EVENT_UNREACHABLE:
		snprintf(d, sizeof(d), "%s is unreachable (status %d)", c->peer,
			 ev->status);
		if (c->state == VS_RESOLVING)
			fail_prepare(c, SRDMA_EUNREACHABLE, "connect",
				     ev->status);
		else
			srdma__verbs_begin_close(c, SRDMA_EUNREACHABLE, d);
		break;
	case RDMA_CM_EVENT_CONNECT_ERROR:
		snprintf(d, sizeof(d), "connection with %s failed (status %d)",
			 c->peer, ev->status);
		srdma__verbs_begin_close(c, SRDMA_EFABRIC, d);
		break;
	case RDMA_CM_EVENT_DEVICE_REMOVAL:
		snprintf(d, sizeof(d), "RDMA device %s was removed",
			 c->dev ? c->dev->name : "?");
		if (c->dev)
			c->dev->dead = true;
		if (c->state == VS_RESOLVING) {
			c->state = VS_CLOSED;
			srdma__verbs_tell_prepared(
				c, srdma__err(SRDMA_ENODEV, "%s", d));
		} else {
			srdma__verbs_begin_close(c, SRDMA_ENODEV, d);
		}
		break;
	case RDMA_CM_EVENT_ADDR_CHANGE:
		/* Bonding failover and the like: this connection stays where
		 * it is; new ones resolve to the new device. */
		srdma__log(lg(c->v), SRDMA_LOG_INFO,
			   "verbs: %s: the local address moved "
			   "(ADDR_CHANGE); this connection stays on %s, new "
			   "ones follow the address",
			   c->peer, c->dev ? c->dev->name : "?");
		break;
	case RDMA_CM_EVENT_DISCONNECTED:
		if (c->state == VS_DISCONNECTING) {
			srdma__verbs_begin_close(c, 0, "disconnected");
		} else if (c->state < VS_DISCONNECTING) {
			/* The peer's DREQ: answer it (DREP), then drain. */
			rdma_disconnect(c->id);
			srdma__verbs_begin_close(c, 0, "the peer disconnected");
		}
		break;
	default:
		srdma__log(lg(c->v), SRDMA_LOG_DEBUG,
			   "verbs: %s: ignoring %s (status %d)", c->peer,
			   rdma_event_str(ev->type), ev->status);
		break;
	}
}

static void dispatch(struct vtp *v, struct vev *ev)
{
	int *kind;

	srdma__log(lg(v), SRDMA_LOG_DEBUG, "verbs: cm event %s status %d",
		   rdma_event_str(ev->type), ev->status);
	if (ev->type == RDMA_CM_EVENT_CONNECT_REQUEST) {
		on_connect_request(v, ev);
		return;
	}
	kind = ev->id ? ev->id->context : NULL;
	if (kind && *kind == KIND_CONN) {
		struct srdma__tp_conn *c = (void *)kind;
		srdma__verbs_hold(c);
		conn_event(c, ev);
		srdma__verbs_release(c);
	} else if (kind && *kind == KIND_LISTENER &&
		   ev->type == RDMA_CM_EVENT_DEVICE_REMOVAL) {
		struct srdma__tp_listener *l = (void *)kind;
		if (l->dev)
			l->dev->dead = true;
		srdma__log(lg(v), SRDMA_LOG_WARN,
			   "verbs: RDMA device %s was removed: the listener on "
			   "port %u takes no more connections through it",
			   l->dev ? l->dev->name : "?", l->port);
	} else {
		srdma__log(lg(v), SRDMA_LOG_INFO,
			   "verbs: %s (status %d) on a listener",
			   rdma_event_str(ev->type), ev->status);
	}
}

void srdma__verbs_cm_ready(void *arg, uint32_t events)
{
	struct vtp *v = arg;
	struct rdma_cm_event *e;
	struct vev ev;

	for (;;) {
		if (rdma_get_cm_event(v->ech, &e)) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				srdma__log(lg(v), SRDMA_LOG_ERROR,
					   "verbs: rdma_get_cm_event: %s",
					   strerror(errno));
			return;
		}
		/* Copy what we need, private data first: it dies with the ack.
		 */
		memset(&ev, 0, sizeof(ev));
		ev.type = e->event;
		ev.status = e->status;
		ev.id = e->id;
		ev.listen_id = e->listen_id;
		if (e->param.conn.private_data) {
			ev.pdata_len = e->param.conn.private_data_len;
			if (ev.pdata_len > sizeof(ev.pdata))
				ev.pdata_len = sizeof(ev.pdata);
			memcpy(ev.pdata, e->param.conn.private_data,
			       ev.pdata_len);
		}
		ev.qp_num = e->param.conn.qp_num;
		ev.initiator_depth = e->param.conn.initiator_depth;
		ev.responder_resources = e->param.conn.responder_resources;
		rdma_ack_cm_event(e);
		dispatch(v, &ev);
	}
}

void srdma__verbs_deferred_ready(void *arg, uint32_t events)
{
	struct vtp *v = arg;
	struct srdma__tp_conn *c;
	uint64_t n;

	if (read(v->evfd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		srdma__log(lg(v), SRDMA_LOG_ERROR, "verbs: eventfd read: %s",
			   strerror(errno));
again:
	for (c = v->conns; c; c = c->next) {
		if (!c->check_pending || c->destroyed)
			continue;
		c->check_pending = false;
		srdma__verbs_hold(c);
		srdma__verbs_poll_cq(c);
		srdma__verbs_check_drained(c);
		srdma__verbs_release(c);
		goto again; /* callbacks may have changed the list */
	}
}

/* ---- ops: listener ------------------------------------------------------ */

int srdma__verbs_listen(struct srdma__tp *tp, const char *host, uint16_t port,
			const struct srdma__tp_listener_cb *cb,
			struct srdma__tp_listener **out)
{
	struct vtp *v = tp->priv;
	struct srdma__tp_listener *l;
	struct sockaddr_in any = {.sin_family = AF_INET,
				  .sin_port = htons(port),
				  .sin_addr.s_addr = htonl(INADDR_ANY)};
	struct addrinfo hints = {.ai_flags = AI_PASSIVE | AI_NUMERICSERV,
				 .ai_socktype = SOCK_STREAM},
			*ai = NULL;
	struct sockaddr *sa = (struct sockaddr *)&any;
	char ps[8];
	int rc;

	ENSURE(cb && cb->on_connreq, SRDMA_EINVAL, "listen needs on_connreq");
	l = calloc(1, sizeof(*l));
	ENSURE(l, SRDMA_ENOMEM, "out of memory for a listener");
	l->kind = KIND_LISTENER;
	l->v = v;
	l->cb = *cb;
	if (rdma_create_id(v->ech, &l->id, l, RDMA_PS_TCP)) {
		rc = srdma__err(SRDMA_EFABRIC, "rdma_create_id: %s",
				strerror(errno));
		goto out_free;
	}
	if (host && host[0]) {
		snprintf(ps, sizeof(ps), "%u", port);
		rc = getaddrinfo(host, ps, &hints, &ai);
		if (rc) {
			rc = srdma__err(SRDMA_ECONFIG,
					"cannot resolve listen address %s: %s",
					host, gai_strerror(rc));
			goto out_destroy_id;
		}
		sa = ai->ai_addr;
	}
	if (rdma_bind_addr(l->id, sa)) {
		int e = errno;
		rc = srdma__err(e == ENODEV || e == EADDRNOTAVAIL ? SRDMA_ENODEV
								  : SRDMA_ESYS,
				"rdma_bind_addr(%s:%u): %s%s",
				host && host[0] ? host : "*", port, strerror(e),
				e == ENODEV || e == EADDRNOTAVAIL
					? " (no RDMA device on that address)"
					: "");
		goto out_free_ai;
	}
	if (v->tp->opts.tos &&
	    rdma_set_option(l->id, RDMA_OPTION_ID, RDMA_OPTION_ID_TOS,
			    &v->tp->opts.tos, sizeof(uint8_t))) {
		rc = srdma__err(SRDMA_ECONFIG,
				"rdma_set_option(TOS 0x%02x) on the listener: "
				"%s",
				v->tp->opts.tos, strerror(errno));
		goto out_free_ai;
	}
	if (l->id->verbs) {
		l->dev = srdma__verbs_dev_of(v, l->id->verbs);
		rc = srdma__verbs_dev_check(l->dev);
		if (rc < 0) {
			rc = srdma__err(rc, "cannot listen on %s: %s", host,
					srdma_error_detail());
			goto out_free_ai;
		}
	}
	if (rdma_listen(l->id, LISTEN_BACKLOG)) {
		rc = srdma__err(SRDMA_ESYS, "rdma_listen(%s:%u): %s",
				host && host[0] ? host : "*", port,
				strerror(errno));
		goto out_free_ai;
	}
	l->port = ntohs(rdma_get_src_port(l->id));
	if (ai)
		freeaddrinfo(ai);
	l->next = v->listeners;
	v->listeners = l;
	*out = l;
	return 0;

out_free_ai:
	if (ai)
		freeaddrinfo(ai);
out_destroy_id:
	rdma_destroy_id(l->id);
out_free:
	free(l);
	return rc;
}

uint16_t srdma__verbs_listener_port(const struct srdma__tp_listener *l)
{
	return l ? l->port : 0;
}

void srdma__verbs_listener_destroy(struct srdma__tp_listener *l)
{
	struct srdma__tp_listener **pp;

	if (!l)
		return;
	for (pp = &l->v->listeners; *pp; pp = &(*pp)->next)
		if (*pp == l) {
			*pp = l->next;
			break;
		}
	if (l->id)
		rdma_destroy_id(l->id);
	free(l);
}

int srdma__verbs_reject(struct srdma__tp_listener *l,
			struct srdma__tp_connreq *req, const void *pdata,
			size_t len)
{
	struct rdma_cm_id *id = req ? req->handle : NULL;
	int rc = 0;

	ENSURE(id, SRDMA_EINVAL, "reject: the request was already decided");
	if (len > REJECT_PDATA_MAX)
		len = REJECT_PDATA_MAX;
	if (rdma_reject(id, pdata, (uint8_t)len))
		rc = srdma__err(SRDMA_EFABRIC, "rdma_reject to %s: %s",
				req->peer, strerror(errno));
	rdma_destroy_id(id);
	req->handle = NULL;
	return rc;
}
