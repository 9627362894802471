/* SPDX-License-Identifier: MIT */
/*
 * verbs backend: the devices. Each transport instance opens its own
 * context per device (so the asynchronous events of its QPs come to it),
 * decides what each device can do (reliable connections, type-2 memory
 * windows), finds the device an address is on (a bound rdma_cm id names
 * it), and reads the devices' asynchronous events in its loop. The probes
 * that AUTO uses before any transport is open live here too.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "transport/verbs/verbs_int.h"

/* ---- what a device can do ----------------------------------------------- */

static const char *transport_str(enum ibv_transport_type t)
{
	switch (t) {
	case IBV_TRANSPORT_IB:
		return "InfiniBand/RoCE";
	case IBV_TRANSPORT_IWARP:
		return "iWARP";
	case IBV_TRANSPORT_USNIC:
	case IBV_TRANSPORT_USNIC_UDP:
		return "usNIC";
	case IBV_TRANSPORT_UNSPECIFIED:
		return "unspecified (EFA or similar)";
	default:
		return "unknown";
	}
}

/*
 * Whether a device carries this backend's connections, and whether its
 * type-2 memory windows are usable. flags: imitated hardware (test builds).
 */
static bool classify(struct ibv_context *ctx, const char *name,
		     const struct ibv_device_attr *da, unsigned flags, bool *mw,
		     char *why, size_t len)
{
	enum ibv_transport_type t = ctx->device->transport_type;
	bool no_mw = false;

#ifdef SRDMA_TEST_HOOKS
	if (flags & SRDMA_VI_IWARP)
		t = IBV_TRANSPORT_IWARP;
	no_mw = flags & SRDMA_VI_NO_MW;
#endif
	*mw = false;
	if (t == IBV_TRANSPORT_IWARP) {
		snprintf(why, len,
			 "RDMA device %s is iWARP, which the verbs transport "
			 "does not support (no QP number in its connect "
			 "request to bind to the TLS session); use the ofi "
			 "transport",
			 name);
		return false;
	}
	if (t != IBV_TRANSPORT_IB || ctx->device->node_type != IBV_NODE_CA) {
		snprintf(why, len,
			 "RDMA device %s (transport %s) has no reliable "
			 "connections through rdma_cm; use the ofi transport "
			 "on it",
			 name, transport_str(t));
		return false;
	}
	/* bnxt_re advertises type-2B windows but its provider has no bind
	 * opcode: every bind would fail. */
	*mw = (da->device_cap_flags & (IBV_DEVICE_MEM_WINDOW_TYPE_2A |
				       IBV_DEVICE_MEM_WINDOW_TYPE_2B)) &&
	      da->max_mw > 0 && !no_mw && strncmp(name, "bnxt_re", 7) != 0;
	why[0] = '\0';
	return true;
}

static const char *link_str(uint8_t ll)
{
	return ll == IBV_LINK_LAYER_ETHERNET ? "RoCE" : "InfiniBand";
}

static bool port_active(struct ibv_context *ctx, const char *name, uint8_t p,
			char *why, size_t len)
{
	struct ibv_port_attr pa;

	if (ibv_query_port(ctx, p, &pa)) {
		snprintf(why, len, "cannot query port %u of RDMA device %s", p,
			 name);
		return false;
	}
	if (pa.state != IBV_PORT_ACTIVE) {
		snprintf(why, len, "port %u of RDMA device %s is %s", p, name,
			 ibv_port_state_str(pa.state));
		return false;
	}
	snprintf(why, len, "RDMA device %s port %u (%s, ACTIVE)", name, p,
		 link_str(pa.link_layer));
	return true;
}

bool srdma__verbs_port_active(struct vdev *d, uint8_t p, char *why, size_t len)
{
	return port_active(d->ctx, d->name, p, why, len);
}

/* ---- the instance's devices ------------------------------------------- */

static void async_ready(void *arg, uint32_t events);

static void dev_free(struct vdev *d)
{
	srdma__loop_del(d->async_reg);
	if (d->ctx)
		ibv_close_device(d->ctx);
	free(d);
}

static struct vdev *dev_add(struct vtp *v, struct ibv_device *dev)
{
	struct vdev *d = calloc(1, sizeof(*d)), **a;

	if (!d)
		return NULL;
	d->v = v;
	snprintf(d->name, sizeof(d->name), "%s", ibv_get_device_name(dev));
	d->ctx = ibv_open_device(dev);
	if (!d->ctx || ibv_query_device(d->ctx, &d->da)) {
		srdma__log(lg(v), SRDMA_LOG_INFO,
			   "verbs: cannot open RDMA device %s: %s", d->name,
			   strerror(errno));
		dev_free(d);
		return NULL;
	}
	srdma__verbs_imitate_dev(d);
	d->usable = classify(d->ctx, d->name, &d->da, d->imitate, &d->mw,
			     d->why, sizeof(d->why));
	if (d->usable && v->device[0] && strcmp(v->device, d->name)) {
		snprintf(d->why, sizeof(d->why),
			 "RDMA device %s is not the configured %s", d->name,
			 v->device);
		d->usable = false;
	}
	if (srdma__verbs_set_nonblock(d->ctx->async_fd) < 0 ||
	    srdma__loop_add(v->tp->loop, d->ctx->async_fd, EPOLLIN, async_ready,
			    NULL, d, &d->async_reg) < 0)
		srdma__log(lg(v), SRDMA_LOG_WARN,
			   "verbs: %s: asynchronous events cannot be read: %s",
			   d->name, srdma_error_detail());
	a = realloc(v->devs, (size_t)(v->ndevs + 1) * sizeof(*a));
	if (!a) {
		dev_free(d);
		return NULL;
	}
	v->devs = a;
	v->devs[v->ndevs++] = d;
	return d;
}

int srdma__verbs_devs_open(struct vtp *v)
{
	struct ibv_device **list;
	int n = 0, i, usable = 0;
	const char *first_why = NULL;

	list = ibv_get_device_list(&n);
	ENSURE(list && n > 0, SRDMA_ENODEV,
	       "no RDMA device: load rdma_rxe and run `rdma link add rxe0 "
	       "type rxe netdev eth0`, or use the ofi transport");
	for (i = 0; i < n; i++) {
		struct vdev *d;
		if (v->device[0] &&
		    strcmp(v->device, ibv_get_device_name(list[i])))
			continue;
		d = dev_add(v, list[i]);
		if (d && d->usable)
			usable++;
		else if (d && !first_why)
			first_why = d->why;
	}
	if (!usable) {
		int rc;
		if (v->device[0] && !v->ndevs)
			rc = srdma__err(SRDMA_ENODEV,
					"RDMA device %s not found (first "
					"present: %s); check `rdma link`",
					v->device,
					ibv_get_device_name(list[0]));
		else
			rc = srdma__err(SRDMA_ENODEV, "%s",
					first_why ? first_why
						  : "no RDMA device could be "
						    "opened");
		ibv_free_device_list(list);
		return rc;
	}
	ibv_free_device_list(list);
	return 0;
}

void srdma__verbs_devs_close(struct vtp *v)
{
	for (int i = 0; i < v->ndevs; i++)
		dev_free(v->devs[i]);
	free(v->devs);
	v->devs = NULL;
	v->ndevs = 0;
}

struct vdev *srdma__verbs_dev_of(struct vtp *v, struct ibv_context *cmctx)
{
	const char *name;
	struct ibv_device **list;
	struct vdev *d = NULL;
	int n = 0, i;

	if (!cmctx)
		return NULL;
	name = ibv_get_device_name(cmctx->device);
	for (i = 0; i < v->ndevs; i++)
		if (!strcmp(v->devs[i]->name, name))
			return v->devs[i];
	/* A device that appeared after open (or was filtered out then). */
	list = ibv_get_device_list(&n);
	for (i = 0; list && i < n; i++)
		if (!strcmp(ibv_get_device_name(list[i]), name)) {
			d = dev_add(v, list[i]);
			break;
		}
	if (list)
		ibv_free_device_list(list);
	return d;
}

int srdma__verbs_dev_check(const struct vdev *d)
{
	ENSURE(d, SRDMA_ENODEV,
	       "the address is on an RDMA device that "
	       "cannot be opened");
	ENSURE(!d->dead, SRDMA_ENODEV,
	       "RDMA device %s has failed or was "
	       "removed",
	       d->name);
	ENSURE(d->usable, SRDMA_ENODEV, "%s", d->why);
	return 0;
}

int srdma__verbs_dev_default(struct vtp *v, struct vdev **out)
{
	char why[256] = "";
	const char *first = NULL;

	for (struct srdma__tp_listener *l = v->listeners; l; l = l->next)
		if (l->dev && !l->dev->dead) {
			*out = l->dev;
			return 0;
		}
	for (int i = 0; i < v->ndevs; i++) {
		struct vdev *d = v->devs[i];
		if (!d->usable || d->dead) {
			if (!first)
				first = d->why;
			continue;
		}
		for (int p = 1; p <= d->da.phys_port_cnt; p++)
			if (port_active(d->ctx, d->name, (uint8_t)p, why,
					sizeof(why))) {
				*out = d;
				return 0;
			}
		first = why;
	}
	return srdma__err(SRDMA_ENODEV,
			  "no usable RDMA device with an ACTIVE port (%s)",
			  first && *first ? first : "none");
}

/* A copy of sa with port 0, IPv4-mapped IPv6 turned into IPv4. */
static socklen_t plain_addr(const struct sockaddr *sa,
			    struct sockaddr_storage *out)
{
	memset(out, 0, sizeof(*out));
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
			struct sockaddr_in *in = (void *)out;
			in->sin_family = AF_INET;
			memcpy(&in->sin_addr, &in6->sin6_addr.s6_addr[12], 4);
			return sizeof(*in);
		}
		memcpy(out, in6, sizeof(*in6));
		((struct sockaddr_in6 *)(void *)out)->sin6_port = 0;
		return sizeof(*in6);
	}
	memcpy(out, sa, sizeof(struct sockaddr_in));
	((struct sockaddr_in *)(void *)out)->sin_port = 0;
	return sizeof(struct sockaddr_in);
}

static void fmt_host(const struct sockaddr *sa, char *out, size_t len)
{
	char hp[80];
	char *colon;

	srdma__verbs_fmt_addr(sa, hp, sizeof(hp));
	colon = strrchr(hp, ':');
	if (colon)
		*colon = '\0';
	snprintf(out, len, "%s", hp);
}

int srdma__verbs_dev_for_addr(struct srdma__tp *tp, const struct sockaddr *sa)
{
	struct vtp *v = tp->priv;
	struct sockaddr_storage ss;
	struct rdma_cm_id *id = NULL;
	struct vdev *d;
	char host[64];
	int rc;

	if (!sa) {
		GUARD(srdma__verbs_dev_default(v, &d));
		return dev_index(d);
	}
	plain_addr(sa, &ss);
	fmt_host((struct sockaddr *)&ss, host, sizeof(host));
	ENSURE(rdma_create_id(v->ech, &id, NULL, RDMA_PS_TCP) == 0,
	       SRDMA_EFABRIC, "rdma_create_id: %s", strerror(errno));
	if (rdma_bind_addr(id, (struct sockaddr *)&ss)) {
		rc = srdma__err(SRDMA_ENODEV,
				"the client reached this host at %s, an "
				"address of no RDMA device (%s); listen on an "
				"RDMA device's address, or use the ofi "
				"transport",
				host, strerror(errno));
		rdma_destroy_id(id);
		return rc;
	}
	if (!id->verbs) {
		rdma_destroy_id(id);
		GUARD(srdma__verbs_dev_default(v, &d));
		return dev_index(d);
	}
	d = srdma__verbs_dev_of(v, id->verbs);
	rdma_destroy_id(id);
	rc = srdma__verbs_dev_check(d);
	if (rc < 0)
		return srdma__err(rc, "the client reached this host at %s: %s",
				  host, srdma_error_detail());
	return dev_index(d);
}

/* ---- asynchronous events ---------------------------------------------- */

/* Ends a connection because of an asynchronous error: the peer hears of it
 * (DREQ) where the connection was up; a client still resolving is told
 * through on_prepared. */
static void fail_conn(struct srdma__tp_conn *c, int code, const char *detail)
{
	if (c->destroyed || c->state >= VS_DRAINING)
		return;
	srdma__verbs_hold(c);
	if (c->state == VS_RESOLVING) {
		srdma__err(code, "%s", detail);
		c->state = VS_CLOSED;
		srdma__verbs_tell_prepared(c, code);
	} else {
		if (c->state == VS_ESTABLISHED && c->id)
			rdma_disconnect(c->id);
		srdma__verbs_begin_close(c, code, detail);
	}
	srdma__verbs_release(c);
}

static struct srdma__tp_conn *conn_of_qp(struct vtp *v, struct ibv_qp *qp)
{
	for (struct srdma__tp_conn *c = v->conns; c; c = c->next)
		if (c->qp == qp && !c->destroyed)
			return c;
	return NULL;
}

static void qp_event(struct vdev *d, enum ibv_event_type t, struct ibv_qp *qp)
{
	struct srdma__tp_conn *c = conn_of_qp(d->v, qp);
	char s[192];

	if (!c) {
		srdma__log(lg(d->v), SRDMA_LOG_DEBUG,
			   "verbs: %s: %s on a QP no connection owns", d->name,
			   ibv_event_type_str(t));
		return;
	}
	switch (t) {
	case IBV_EVENT_COMM_EST:
		/* Data before the RTU: the connection is up (rdma_notify
		 * tells the CM, as its man page asks). */
		if (c->state == VS_ACCEPTING) {
			rdma_notify(c->id, t);
			srdma__verbs_tell_established(c);
		}
		return;
	case IBV_EVENT_QP_ACCESS_ERR:
		snprintf(s, sizeof(s),
			 "the peer (%s) tried an RDMA access that no key of "
			 "this connection allows (IBV_EVENT_QP_ACCESS_ERR on "
			 "QP %u)",
			 c->peer, qp->qp_num);
		fail_conn(c, SRDMA_EREMOTE_ACCESS, s);
		return;
	case IBV_EVENT_QP_REQ_ERR:
		snprintf(s, sizeof(s),
			 "the peer (%s) sent an invalid request "
			 "(IBV_EVENT_QP_REQ_ERR on QP %u)",
			 c->peer, qp->qp_num);
		fail_conn(c, SRDMA_EFABRIC, s);
		return;
	case IBV_EVENT_QP_FATAL:
	case IBV_EVENT_PATH_MIG_ERR:
		snprintf(s, sizeof(s),
			 "QP %u of the connection with %s failed on RDMA "
			 "device %s (%s)",
			 qp->qp_num, c->peer, d->name, ibv_event_type_str(t));
		fail_conn(c, SRDMA_EFABRIC, s);
		return;
	default:
		srdma__log(lg(d->v), SRDMA_LOG_DEBUG, "verbs: %s: %s on QP %u",
			   c->peer, ibv_event_type_str(t), qp->qp_num);
		return;
	}
}

static void cq_event(struct vdev *d, struct ibv_cq *cq)
{
	char s[192];

	for (struct srdma__tp_conn *c = d->v->conns; c; c = c->next)
		if (c->cq == cq && !c->destroyed) {
			snprintf(s, sizeof(s),
				 "the completion queue of the connection with "
				 "%s failed on RDMA device %s "
				 "(IBV_EVENT_CQ_ERR)",
				 c->peer, d->name);
			fail_conn(c, SRDMA_EFABRIC, s);
			return;
		}
}

/* Connections whose fabric path is on port p of d (p 0: every port). */
static void fail_port(struct vdev *d, int p, int code, const char *what)
{
	struct vtp *v = d->v;
	char s[192];

again:
	for (struct srdma__tp_conn *c = v->conns; c; c = c->next) {
		if (c->destroyed || c->dev != d || c->state >= VS_DRAINING ||
		    c->state == VS_NEW)
			continue;
		if (p && c->id && c->id->port_num && c->id->port_num != p)
			continue;
		snprintf(s, sizeof(s), "%s under the connection with %s", what,
			 c->peer);
		fail_conn(c, code, s);
		goto again; /* callbacks may have changed the list */
	}
}

/* What an asynchronous event is about, copied before it is acked. */
union aev_el {
	struct ibv_cq *cq;
	struct ibv_qp *qp;
	int port_num;
};

static void async_dispatch(struct vdev *d, enum ibv_event_type t,
			   const union aev_el *el)
{
	struct vtp *v = d->v;
	char s[160];

	switch (t) {
	case IBV_EVENT_CQ_ERR:
		cq_event(d, el->cq);
		break;
	case IBV_EVENT_QP_FATAL:
	case IBV_EVENT_QP_REQ_ERR:
	case IBV_EVENT_QP_ACCESS_ERR:
	case IBV_EVENT_COMM_EST:
	case IBV_EVENT_SQ_DRAINED:
	case IBV_EVENT_PATH_MIG:
	case IBV_EVENT_PATH_MIG_ERR:
	case IBV_EVENT_QP_LAST_WQE_REACHED:
		qp_event(d, t, el->qp);
		break;
	case IBV_EVENT_PORT_ERR:
		snprintf(s, sizeof(s),
			 "port %d of RDMA device %s went down "
			 "(IBV_EVENT_PORT_ERR)",
			 el->port_num, d->name);
		srdma__log(lg(v), SRDMA_LOG_INFO, "verbs: %s", s);
		fail_port(d, el->port_num, SRDMA_EFABRIC, s);
		break;
	case IBV_EVENT_DEVICE_FATAL:
		snprintf(d->why, sizeof(d->why),
			 "RDMA device %s failed (IBV_EVENT_DEVICE_FATAL)",
			 d->name);
		d->dead = true;
		srdma__log(lg(v), SRDMA_LOG_WARN, "verbs: %s", d->why);
		fail_port(d, 0, SRDMA_ENODEV, d->why);
		/* A dead device's async fd may stay readable. */
		srdma__loop_del(d->async_reg);
		d->async_reg = NULL;
		break;
	case IBV_EVENT_PORT_ACTIVE:
		srdma__log(lg(v), SRDMA_LOG_INFO,
			   "verbs: port %d of RDMA device %s is up again",
			   el->port_num, d->name);
		break;
	default:
		srdma__log(lg(v), SRDMA_LOG_DEBUG, "verbs: %s: %s", d->name,
			   ibv_event_type_str(t));
		break;
	}
}

static void async_ready(void *arg, uint32_t events)
{
	struct vdev *d = arg;
	struct ibv_async_event e;
	union aev_el el;
	enum ibv_event_type t;

	while (d->async_reg) {
		if (ibv_get_async_event(d->ctx, &e)) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK) {
				srdma__log(lg(d->v), SRDMA_LOG_WARN,
					   "verbs: %s: ibv_get_async_event: "
					   "%s",
					   d->name, strerror(errno));
				srdma__loop_del(d->async_reg);
				d->async_reg = NULL;
			}
			return;
		}
		/* Copy, then acknowledge at once: ibv_destroy_qp/cq wait for
		 * every event of theirs to be acknowledged. */
		t = e.event_type;
		memset(&el, 0, sizeof(el));
		if (t == IBV_EVENT_CQ_ERR)
			el.cq = e.element.cq;
		else if (t == IBV_EVENT_PORT_ERR ||
			 t == IBV_EVENT_PORT_ACTIVE ||
			 t == IBV_EVENT_LID_CHANGE ||
			 t == IBV_EVENT_PKEY_CHANGE ||
			 t == IBV_EVENT_SM_CHANGE ||
			 t == IBV_EVENT_CLIENT_REREGISTER ||
			 t == IBV_EVENT_GID_CHANGE)
			el.port_num = e.element.port_num;
		else
			el.qp = e.element.qp;
		ibv_ack_async_event(&e);
		async_dispatch(d, t, &el);
	}
}

/* ---- probes for AUTO (no transport open) ------------------------------ */

bool srdma__verbs_available(char *why, size_t len)
{
	struct ibv_device **list;
	char first[256] = "", pw[256], more[128] = "";
	bool found = false;
	int n = 0, i, p;

	list = ibv_get_device_list(&n);
	if (!list || n <= 0) {
		snprintf(why, len, "no RDMA devices found");
		if (list)
			ibv_free_device_list(list);
		return false;
	}
	for (i = 0; i < n; i++) {
		struct ibv_context *ctx = ibv_open_device(list[i]);
		const char *name = ibv_get_device_name(list[i]);
		struct ibv_device_attr da;
		unsigned flags = 0;
		bool mw, active = false;

		if (!ctx)
			continue;
		if (ibv_query_device(ctx, &da) == 0) {
			srdma__verbs_imitate_attr(name, &flags, &da);
			if (!classify(ctx, name, &da, flags, &mw, pw,
				      sizeof(pw))) {
				if (!first[0])
					snprintf(first, sizeof(first), "%s",
						 pw);
			} else {
				for (p = 1; p <= da.phys_port_cnt && !active;
				     p++) {
					active = port_active(ctx, name,
							     (uint8_t)p, pw,
							     sizeof(pw));
					if (!active && !first[0])
						snprintf(first, sizeof(first),
							 "%s", pw);
				}
			}
		}
		ibv_close_device(ctx);
		if (active && !found) {
			snprintf(why, len, "found %s", pw);
			found = true;
		} else if (active) {
			/* Every usable one: a wildcard server serves on all. */
			size_t l = strlen(more);
			snprintf(more + l, sizeof(more) - l, "%s%s",
				 l ? ", " : "", name);
		}
	}
	if (found && more[0]) {
		size_t l = strlen(why);
		snprintf(why + l, len - l, "; also %s", more);
	}
	if (!found)
		snprintf(why, len, "%d RDMA device(s) but none usable (%s)", n,
			 first[0] ? first : "none could be opened");
	ibv_free_device_list(list);
	return found;
}

static bool is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)(const void *)sa)
				      ->sin_addr.s_addr) >>
			24) == 127;
	return sa->sa_family == AF_INET6 &&
	       IN6_IS_ADDR_LOOPBACK(
		       &((const struct sockaddr_in6 *)(const void *)sa)
				->sin6_addr);
}

/* The local address the kernel would send from to reach dst. */
static int source_for(const struct sockaddr *dst, socklen_t dlen,
		      struct sockaddr_storage *src)
{
	socklen_t sl = sizeof(*src);
	int fd = socket(dst->sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0), rc = -1;

	if (fd < 0)
		return -1;
	if (connect(fd, dst, dlen) == 0 &&
	    getsockname(fd, (struct sockaddr *)src, &sl) == 0)
		rc = 0;
	close(fd);
	return rc;
}

bool srdma__verbs_reaches(const char *host, bool passive, char *why, size_t len)
{
	struct addrinfo hints = {.ai_socktype = SOCK_DGRAM}, *ai = NULL;
	struct sockaddr_storage src, ss;
	struct rdma_cm_id *id = NULL;
	struct ibv_device_attr da;
	char shost[64], pw[256];
	const char *name;
	unsigned flags = 0;
	bool ok = false, mw;

	if (!host || !host[0] || !strcmp(host, "0.0.0.0") ||
	    !strcmp(host, "::"))
		return srdma__verbs_available(why, len);
	if (getaddrinfo(host, NULL, &hints, &ai) || !ai) {
		snprintf(why, len, "cannot resolve %s", host);
		return false;
	}
	if (passive) {
		memcpy(&src, ai->ai_addr, ai->ai_addrlen);
	} else if (source_for(ai->ai_addr, ai->ai_addrlen, &src) < 0) {
		snprintf(why, len, "no route to %s: %s", host, strerror(errno));
		goto out;
	}
	plain_addr((struct sockaddr *)&src, &ss);
	fmt_host((struct sockaddr *)&ss, shost, sizeof(shost));
	if (is_loopback((struct sockaddr *)&ss)) {
		snprintf(why, len,
			 "%s is on the loopback interface, which RDMA cannot "
			 "use",
			 host);
		goto out;
	}
	if (rdma_create_id(NULL, &id, NULL, RDMA_PS_TCP)) {
		snprintf(why, len, "rdma_cm is unavailable (%s)",
			 strerror(errno));
		id = NULL;
		goto out;
	}
	if (rdma_bind_addr(id, (struct sockaddr *)&ss) || !id->verbs) {
		if (passive)
			snprintf(why, len, "%s is an address of no RDMA device",
				 host);
		else
			snprintf(why, len,
				 "%s is reached from %s, an address of no RDMA "
				 "device",
				 host, shost);
		goto out;
	}
	name = ibv_get_device_name(id->verbs->device);
	if (ibv_query_device(id->verbs, &da)) {
		snprintf(why, len, "cannot query RDMA device %s", name);
		goto out;
	}
	srdma__verbs_imitate_attr(name, &flags, &da);
	if (!classify(id->verbs, name, &da, flags, &mw, pw, sizeof(pw))) {
		snprintf(why, len, "%s: %s", host, pw);
		goto out;
	}
	ok = port_active(id->verbs, name, id->port_num ? id->port_num : 1, pw,
			 sizeof(pw));
	if (ok && passive)
		snprintf(why, len, "%s is on %s", host, pw);
	else if (ok)
		snprintf(why, len, "%s is reached through %s", host, pw);
	else
		snprintf(why, len, "%s: %s", host, pw);
out:
	if (id)
		rdma_destroy_id(id);
	freeaddrinfo(ai);
	return ok;
}
