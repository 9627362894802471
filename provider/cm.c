/* SPDX-License-Identifier: MIT */
/*
 * Connection management: the passive endpoint (a libsrdma server context
 * and listener), connection requests, and the endpoint's connect, accept,
 * reject and shutdown.
 *
 * libsrdma authenticates both sides before either sees a connection
 * (TLS 1.3, mutual X.509, then the fabric connect with its one-time
 * token). libfabric's connection data rides on top, as the first record
 * each way inside the protected channel:
 *
 *   fi_connect     -> TLS, fabric connect    -> SRDMA_EV_ACCEPTED
 *   EV_CONNECTED   -> CONNREQ(data)          -> FI_CONNREQ(info, data)
 *   FI_CONNECTED   <- ACCEPT(data)           <- fi_accept (FI_CONNECTED)
 *   ECONNREFUSED   <- REJECT(data), close    <- fi_reject
 *
 * A peer that fails authentication never reaches the consumer on the
 * passive side (it is logged); the connecting side gets an EQ error whose
 * fi_eq_strerror is our sentence.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "prov.h"

/* ---- addresses ---------------------------------------------------------- */

int sp_addr_host(const void *addr, size_t len, char *host, size_t hlen,
		 uint16_t *port)
{
	const struct sockaddr *sa = addr;

	if (!addr || len < sizeof(struct sockaddr_in))
		return -FI_EINVAL;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = addr;

		if (!inet_ntop(AF_INET, &in->sin_addr, host, (socklen_t)hlen))
			return -FI_EINVAL;
		*port = ntohs(in->sin_port);
		return 0;
	}
	if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
		const struct sockaddr_in6 *in6 = addr;

		if (!inet_ntop(AF_INET6, &in6->sin6_addr, host,
			       (socklen_t)hlen))
			return -FI_EINVAL;
		*port = ntohs(in6->sin6_port);
		return 0;
	}
	return -FI_EINVAL;
}

/* "1.2.3.4:5" or "[::1]:5" (srdma_conn_info's peer_addr). */
int sp_addr_parse(const char *hostport, struct sockaddr_storage *ss,
		  size_t *len)
{
	char host[64];
	const char *colon = strrchr(hostport, ':');
	size_t n;

	if (!colon)
		return -FI_EINVAL;
	n = (size_t)(colon - hostport);
	if (n >= sizeof(host))
		return -FI_EINVAL;
	memcpy(host, hostport, n);
	host[n] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (host[0] == '[' && n >= 2 && host[n - 1] == ']') {
		struct sockaddr_in6 *in6 = (void *)ss;

		host[n - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &in6->sin6_addr) != 1)
			return -FI_EINVAL;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)atoi(colon + 1));
		*len = sizeof(*in6);
		return 0;
	} else {
		struct sockaddr_in *in = (void *)ss;

		if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
			return -FI_EINVAL;
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)atoi(colon + 1));
		*len = sizeof(*in);
		return 0;
	}
}

static int copy_name(const void *src, size_t src_len, void *addr,
		     size_t *addrlen)
{
	size_t cap = *addrlen;

	*addrlen = src_len;
	if (cap < src_len)
		return -FI_ETOOSMALL;
	memcpy(addr, src, src_len);
	return 0;
}

void sp_conn_describe(srdma_conn *conn, char *buf, size_t len)
{
	struct srdma_conn_info ci;

	if (srdma_conn_info(conn, &ci) < 0) {
		snprintf(buf, len, "(no connection information)");
		return;
	}
	snprintf(buf, len, "%s, %s%s%s, peer %s, %s/%s", ci.tls_version,
		 srdma_protect_name(ci.protect), ci.cipher[0] ? " " : "",
		 ci.cipher, ci.peer_identity,
		 srdma_transport_name(ci.transport), ci.provider);
}

/* ---- connection requests ----------------------------------------------- */

static void creq_free(struct sp_creq *cr)
{
	sp_list_del(&cr->link);
	free(cr);
}

/* The connection dies with the request (pep closed, protocol error). */
static void creq_drop(struct sp_creq *cr)
{
	if (cr->conn) {
		struct sp_sctx *s = cr->pep->sctx;

		srdma_conn_destroy(cr->conn);
		cr->conn = NULL;
		sp_sctx_put(s);
	}
}

void sp_pep_accepted(struct sp_sctx *s, srdma_conn *conn)
{
	struct srdma_conn_info ci;
	struct sp_creq *cr;

	s->refs++; /* the connection's */
	if (!s->pep) {
		sp_conn_linger(s->fab, conn, s);
		return;
	}
	cr = calloc(1, sizeof(*cr));
	if (!cr) {
		sp_log(SRDMA_LOG_ERROR,
		       "out of memory for a connection request");
		sp_conn_linger(s->fab, conn, s);
		return;
	}
	cr->handle.fclass = FI_CLASS_CONNREQ;
	cr->own.kind = SP_OWN_CONNREQ;
	cr->pep = s->pep;
	cr->conn = conn;
	cr->state = CREQ_WAIT_DATA;
	if (srdma_conn_info(conn, &ci) == 0)
		snprintf(cr->peer, sizeof(cr->peer), "%s", ci.peer_addr);
	srdma_conn_set_user(conn, &cr->own);
	sp_list_add_tail(&s->pep->creqs, &cr->link);
}

static void creq_report(struct sp_creq *cr, const struct sp_rec *r)
{
	struct sp_pep *pep = cr->pep;
	struct sockaddr_storage ss;
	struct fi_info *info;
	size_t len;

	info = fi_dupinfo(pep->info);
	if (!info)
		goto out_refuse;
	free(info->dest_addr);
	info->dest_addr = NULL;
	info->dest_addrlen = 0;
	if (sp_addr_parse(cr->peer, &ss, &len) == 0) {
		info->dest_addr = malloc(len);
		if (info->dest_addr) {
			memcpy(info->dest_addr, &ss, len);
			info->dest_addrlen = len;
		}
	}
	info->handle = &cr->handle;
	if (!pep->eq || sp_eq_push(pep->eq, FI_CONNREQ, &pep->fid.fid, info,
				   r->payload, r->len) != 0) {
		fi_freeinfo(info);
		goto out_refuse;
	}
	cr->state = CREQ_PENDING;
	return;

out_refuse:
	sp_log(SRDMA_LOG_WARN, "cannot report a connection request from %s",
	       cr->peer);
	(void)srdma_conn_abort(cr->conn, SRDMA_ENOMEM,
			       "the server could not take the connection");
}

void sp_creq_event(struct sp_creq *cr, const struct srdma_event *ev)
{
	struct sp_rec r;

	switch (ev->type) {
	case SRDMA_EV_RECV:
		if (sp_rec_parse(ev->data, ev->len, &r) == 0) {
			if (r.type == SP_REC_BYE) {
				/* the client gave up before an answer */
				(void)srdma_conn_close(cr->conn);
				return;
			}
			if (cr->state == CREQ_WAIT_DATA &&
			    r.type == SP_REC_CONNREQ) {
				creq_report(cr, &r);
				return;
			}
		}
		(void)srdma_conn_abort(cr->conn, SRDMA_EPROTO,
				       "expected a connection request");
		return;
	case SRDMA_EV_CLOSED:
		if (ev->status && ev->status != SRDMA_ECLOSED)
			sp_log(SRDMA_LOG_WARN,
			       "connection request from %s failed: %s%s%s",
			       cr->peer, srdma_strerror(ev->status),
			       ev->detail && *ev->detail ? " " : "",
			       ev->detail ? ev->detail : "");
		creq_drop(cr);
		if (cr->state == CREQ_WAIT_DATA)
			creq_free(cr); /* the consumer never saw it */
		else
			cr->state = CREQ_DEAD;
		return;
	default:
		return;
	}
}

int sp_creq_take(struct sp_fabric *f, fid_t handle, srdma_conn **conn,
		 struct sp_sctx **s)
{
	struct sp_creq *cr;

	if (!handle || handle->fclass != FI_CLASS_CONNREQ)
		return -FI_EINVAL;
	cr = SP_CONTAINER(handle, struct sp_creq, handle);
	if (cr->state == CREQ_DEAD) {
		creq_free(cr);
		return -FI_ECONNABORTED;
	}
	if (cr->state != CREQ_PENDING || !cr->conn)
		return -FI_EINVAL; /* never reported: not a handle we gave */
	*conn = cr->conn;
	*s = cr->pep->sctx;
	creq_free(cr);
	return 0;
}

/* ---- passive endpoint --------------------------------------------------- */

static int pep_listen(struct fid_pep *fid)
{
	struct sp_pep *pep = SP_CONTAINER(fid, struct sp_pep, fid);
	struct sp_fabric *f = pep->fab;
	char host[64] = "";
	uint16_t port = 0;
	int rc;

	sp_lock(f);
	if (pep->listener) {
		rc = -FI_EINVAL;
		goto out;
	}
	if (pep->info->src_addr &&
	    sp_addr_host(pep->info->src_addr, pep->info->src_addrlen, host,
			 sizeof(host), &port) != 0) {
		rc = -FI_EINVAL;
		goto out;
	}
	rc = sp_sctx_new(f, true, &pep->sctx);
	if (rc)
		goto out;
	pep->sctx->pep = pep;
	rc = srdma_listen(pep->sctx->ctx, host[0] ? host : NULL, port,
			  &pep->listener);
	if (rc < 0) {
		sp_log(SRDMA_LOG_ERROR, "cannot listen on %s:%u: %s",
		       host[0] ? host : "*", port, srdma_error_detail());
		pep->sctx->pep = NULL;
		sp_sctx_put(pep->sctx);
		pep->sctx = NULL;
		rc = rc == SRDMA_ESYS ? -FI_EADDRINUSE : -sp_srdma_to_fi(rc);
		goto out;
	}
	sp_log(SRDMA_LOG_INFO, "listening on %s:%u (fabric port %u)",
	       host[0] ? host : "*", srdma_listener_port(pep->listener),
	       srdma_listener_fabric_port(pep->listener));
	rc = 0;
out:
	sp_unlock(f);
	return rc;
}

static int pep_getname(fid_t fid, void *addr, size_t *addrlen)
{
	struct sp_pep *pep = SP_CONTAINER(fid, struct sp_pep, fid.fid);
	struct sockaddr_storage ss;
	size_t len;
	int rc;

	sp_lock(pep->fab);
	if (!pep->info->src_addr) {
		struct sockaddr_in *in = (void *)&ss;

		memset(in, 0, sizeof(*in));
		in->sin_family = AF_INET;
		len = sizeof(*in);
	} else {
		len = pep->info->src_addrlen;
		memcpy(&ss, pep->info->src_addr, len);
	}
	if (pep->listener) {
		uint16_t port = htons(srdma_listener_port(pep->listener));

		if (ss.ss_family == AF_INET6)
			((struct sockaddr_in6 *)&ss)->sin6_port = port;
		else
			((struct sockaddr_in *)&ss)->sin_port = port;
	}
	rc = copy_name(&ss, len, addr, addrlen);
	sp_unlock(pep->fab);
	return rc;
}

static int pep_setname(fid_t fid, void *addr, size_t addrlen)
{
	struct sp_pep *pep = SP_CONTAINER(fid, struct sp_pep, fid.fid);
	void *copy;
	int rc = 0;

	if (addrlen > sizeof(struct sockaddr_storage))
		return -FI_EINVAL;
	sp_lock(pep->fab);
	if (pep->listener) {
		rc = -FI_EBUSY;
	} else if (!(copy = malloc(addrlen))) {
		rc = -FI_ENOMEM;
	} else {
		memcpy(copy, addr, addrlen);
		free(pep->info->src_addr);
		pep->info->src_addr = copy;
		pep->info->src_addrlen = addrlen;
	}
	sp_unlock(pep->fab);
	return rc;
}

static int pep_reject(struct fid_pep *fid, fid_t handle, const void *param,
		      size_t paramlen)
{
	struct sp_pep *pep = SP_CONTAINER(fid, struct sp_pep, fid);
	uint8_t rec[SP_REC_HDR_MAX + SP_CM_DATA_MAX];
	struct sp_rec r = {.type = SP_REC_REJECT, .len = paramlen};
	struct sp_sctx *s;
	srdma_conn *conn;
	size_t n;
	int rc;

	if (paramlen > SP_CM_DATA_MAX || (paramlen && !param))
		return -FI_EINVAL;
	sp_lock(pep->fab);
	rc = sp_creq_take(pep->fab, handle, &conn, &s);
	if (rc == 0) {
		n = sp_rec_encode(rec, &r);
		if (paramlen)
			memcpy(rec + n, param, paramlen);
		/* The REJECT record goes before the goodbye: the window is
		 * fresh, as nothing else was sent on this connection. */
		if (srdma_send(conn, rec, n + paramlen) < 0)
			sp_log(SRDMA_LOG_WARN, "fi_reject: %s",
			       srdma_error_detail());
		sp_conn_linger(pep->fab, conn, s);
	} else if (rc == -FI_ECONNABORTED) {
		rc = 0; /* gone already: nothing to reject */
	}
	sp_unlock(pep->fab);
	return rc;
}

static int pep_bind(struct fid *fid, struct fid *bfid, uint64_t flags)
{
	struct sp_pep *pep = SP_CONTAINER(fid, struct sp_pep, fid.fid);
	int rc = 0;

	if (bfid->fclass != FI_CLASS_EQ)
		return -FI_EINVAL;
	sp_lock(pep->fab);
	if (pep->eq) {
		rc = -FI_EINVAL;
	} else {
		pep->eq = SP_CONTAINER(bfid, struct sp_eq, fid.fid);
		pep->eq->refs++;
	}
	sp_unlock(pep->fab);
	return rc;
}

static int pep_close(struct fid *fid)
{
	struct sp_pep *pep = SP_CONTAINER(fid, struct sp_pep, fid.fid);
	struct sp_fabric *f = pep->fab;

	sp_lock(f);
	while (!sp_list_empty(&pep->creqs)) {
		struct sp_creq *cr =
			SP_CONTAINER(pep->creqs.next, struct sp_creq, link);

		/* Refused, not waited on: fi_close must not block. */
		if (cr->conn)
			(void)srdma_conn_abort(cr->conn, SRDMA_ECLOSED,
					       "the listener was closed");
		creq_drop(cr);
		creq_free(cr);
	}
	srdma_listener_destroy(pep->listener);
	if (pep->sctx) {
		pep->sctx->pep = NULL;
		sp_sctx_put(pep->sctx);
	}
	if (pep->eq)
		pep->eq->refs--;
	f->refs--;
	sp_unlock(f);
	fi_freeinfo(pep->info);
	free(pep);
	return 0;
}

/* Endpoint options, the same for passive and active endpoints: only the
 * connect data size is known (ep.c uses these too). */
int sp_getopt(fid_t fid, int level, int optname, void *optval, size_t *optlen)
{
	if (level != FI_OPT_ENDPOINT)
		return -FI_ENOPROTOOPT;
	if (optname == FI_OPT_CM_DATA_SIZE) {
		if (*optlen < sizeof(size_t))
			return -FI_ETOOSMALL;
		*(size_t *)optval = SP_CM_DATA_MAX;
		*optlen = sizeof(size_t);
		return 0;
	}
	return -FI_ENOPROTOOPT;
}

int sp_setopt(fid_t fid, int level, int optname, const void *optval,
	      size_t optlen)
{
	return -FI_ENOPROTOOPT;
}

static ssize_t no_cancel(fid_t fid, void *context)
{
	return -FI_ENOSYS;
}

static struct fi_ops pep_fi_ops = {
	.size = sizeof(struct fi_ops),
	.close = pep_close,
	.bind = pep_bind,
	.control = sp_no_control,
	.ops_open = sp_no_ops_open,
};

static struct fi_ops_ep pep_ep_ops = {
	.size = sizeof(struct fi_ops_ep),
	.cancel = no_cancel,
	.getopt = sp_getopt,
	.setopt = sp_setopt,
};

static int no_getpeer(struct fid_ep *ep, void *addr, size_t *addrlen)
{
	return -FI_ENOSYS;
}

static int no_connect(struct fid_ep *ep, const void *addr, const void *param,
		      size_t paramlen)
{
	return -FI_ENOSYS;
}

static int no_accept(struct fid_ep *ep, const void *param, size_t paramlen)
{
	return -FI_ENOSYS;
}

static int no_listen(struct fid_pep *pep)
{
	return -FI_ENOSYS;
}

static int no_reject(struct fid_pep *pep, fid_t handle, const void *param,
		     size_t paramlen)
{
	return -FI_ENOSYS;
}

static int no_shutdown(struct fid_ep *ep, uint64_t flags)
{
	return -FI_ENOSYS;
}

static int no_join(struct fid_ep *ep, const void *addr, uint64_t flags,
		   struct fid_mc **mc, void *context)
{
	return -FI_ENOSYS;
}

static struct fi_ops_cm pep_cm_ops = {
	.size = sizeof(struct fi_ops_cm),
	.setname = pep_setname,
	.getname = pep_getname,
	.getpeer = no_getpeer,
	.connect = no_connect,
	.listen = pep_listen,
	.accept = no_accept,
	.reject = pep_reject,
	.shutdown = no_shutdown,
	.join = no_join,
};

int sp_passive_ep(struct fid_fabric *fabric, struct fi_info *info,
		  struct fid_pep **out, void *context)
{
	struct sp_fabric *f = SP_CONTAINER(fabric, struct sp_fabric, fid);
	struct sp_pep *pep;

	if (!info || (info->ep_attr && info->ep_attr->type != FI_EP_MSG &&
		      info->ep_attr->type != FI_EP_UNSPEC))
		return -FI_EINVAL;
	pep = calloc(1, sizeof(*pep));
	if (!pep)
		return -FI_ENOMEM;
	pep->info = fi_dupinfo(info);
	if (!pep->info) {
		free(pep);
		return -FI_ENOMEM;
	}
	pep->fab = f;
	sp_list_init(&pep->creqs);
	pep->fid.fid.fclass = FI_CLASS_PEP;
	pep->fid.fid.context = context;
	pep->fid.fid.ops = &pep_fi_ops;
	pep->fid.ops = &pep_ep_ops;
	pep->fid.cm = &pep_cm_ops;
	sp_lock(f);
	f->refs++;
	sp_unlock(f);
	*out = &pep->fid;
	return 0;
}

/* ---- endpoint connection management ----------------------------------- */

static int ep_connect(struct fid_ep *fid, const void *addr, const void *param,
		      size_t paramlen)
{
	struct sp_ep *ep = SP_CONTAINER(fid, struct sp_ep, fid);
	struct sp_fabric *f = ep->fab;
	size_t alen = ep->info->dest_addrlen;
	const char *refused;
	struct sp_sctx *s;
	srdma_conn *conn;
	char host[64];
	uint16_t port;
	int rc;

	if (paramlen > SP_CM_DATA_MAX || (paramlen && !param))
		return -FI_EINVAL;
	if (!addr) {
		addr = ep->info->dest_addr;
	} else if (((const struct sockaddr *)addr)->sa_family == AF_INET6) {
		alen = sizeof(struct sockaddr_in6);
	} else {
		alen = sizeof(struct sockaddr_in);
	}
	if (sp_addr_host(addr, alen, host, sizeof(host), &port) != 0)
		return -FI_EINVAL;
	sp_lock(f);
	if (ep->state != EP_IDLE || ep->conn) {
		rc = -FI_EISCONN;
		goto out;
	}
	snprintf(ep->peer_text, sizeof(ep->peer_text), "%s:%u", host, port);
	refused = sp_refused_find(f, ep->peer_text);
	if (refused) {
		sp_log(SRDMA_LOG_WARN,
		       "not connecting to %s again (it failed "
		       "authentication in the last 30 s): %s",
		       ep->peer_text, refused);
		rc = -FI_ECONNREFUSED;
		goto out;
	}
	rc = sp_client_ctx(f, &s);
	if (rc)
		goto out;
	rc = srdma_connect_start(s->ctx, host, port, &ep->own, &conn);
	if (rc < 0) {
		sp_log(SRDMA_LOG_WARN, "cannot connect to %s:%u: %s", host,
		       port, srdma_error_detail());
		sp_sctx_put(s);
		rc = -sp_srdma_to_fi(rc);
		goto out;
	}
	srdma_conn_set_user(conn, &ep->own);
	ep->conn = conn;
	ep->sctx = s;
	if (paramlen)
		memcpy(ep->cm_data, param, paramlen);
	ep->cm_len = paramlen;
	memcpy(&ep->peer, addr, alen);
	ep->peer_len = alen;
	ep->state = EP_CONNECTING;
	rc = 0;
out:
	sp_unlock(f);
	return rc;
}

static void ep_established(struct sp_ep *ep, const char *how)
{
	char text[256];

	sp_conn_describe(ep->conn, text, sizeof(text));
	sp_log(SRDMA_LOG_INFO, "%s %s: %s", how, ep->peer_text, text);
	ep->state = EP_CONNECTED;
}

static int ep_accept(struct fid_ep *fid, const void *param, size_t paramlen)
{
	struct sp_ep *ep = SP_CONTAINER(fid, struct sp_ep, fid);
	int rc;

	if (paramlen > SP_CM_DATA_MAX || (paramlen && !param))
		return -FI_EINVAL;
	sp_lock(ep->fab);
	if (ep->state != EP_ACCEPTING || !ep->eq) {
		rc = -FI_EINVAL;
		goto out;
	}
	rc = sp_ep_send_cm(ep, SP_REC_ACCEPT, param, paramlen);
	if (rc < 0) {
		sp_log(SRDMA_LOG_WARN, "fi_accept %s: %s", ep->peer_text,
		       srdma_error_detail());
		rc = -sp_srdma_to_fi(rc);
		goto out;
	}
	ep_established(ep, "accepted");
	rc = sp_eq_push(ep->eq, FI_CONNECTED, &ep->fid.fid, NULL, NULL, 0);
out:
	sp_unlock(ep->fab);
	return rc;
}

/* The peer closes: everything it sent is here (BYE follows it in order).
 * Report the shutdown and close the connection, which it waits for. */
static void ep_bye(struct sp_ep *ep)
{
	enum sp_ep_state was = ep->state;

	if (was == EP_CONNECTED) {
		ep->state = EP_SHUTDOWN;
		sp_ep_flush_tx(ep);
		if (ep->eq)
			(void)sp_eq_push(ep->eq, FI_SHUTDOWN, &ep->fid.fid,
					 NULL, NULL, 0);
	} else if (was == EP_WAIT_ACCEPT || was == EP_ACCEPTING) {
		sp_ep_closed(ep, SRDMA_ECLOSED,
			     "the peer closed before the connection was "
			     "accepted");
	}
	(void)srdma_conn_close(ep->conn);
}

void sp_ep_cm_record(struct sp_ep *ep, const struct sp_rec *r)
{
	if (r->type == SP_REC_BYE) {
		ep_bye(ep);
		return;
	}
	if (ep->state != EP_WAIT_ACCEPT) {
		(void)srdma_conn_abort(ep->conn, SRDMA_EPROTO,
				       "unexpected connection record");
		return;
	}
	if (r->type == SP_REC_ACCEPT) {
		ep_established(ep, "connected to");
		if (ep->eq)
			(void)sp_eq_push(ep->eq, FI_CONNECTED, &ep->fid.fid,
					 NULL, r->payload, r->len);
		sp_ep_push(ep);
		return;
	}
	if (r->type == SP_REC_REJECT) {
		sp_log(SRDMA_LOG_INFO, "%s rejected the connection",
		       ep->peer_text);
		ep->state = EP_FAILED;
		ep->fail_code = SRDMA_ECONNREFUSED;
		snprintf(ep->fail_text, sizeof(ep->fail_text),
			 "The peer rejected the connection (fi_reject).");
		if (ep->eq)
			(void)sp_eq_push_err(
				ep->eq, &ep->fid.fid, ep->fid.fid.context,
				FI_ECONNREFUSED, 0, NULL, r->payload, r->len);
		/* The rejecting side waits for us to close. */
		(void)srdma_conn_close(ep->conn);
		return;
	}
	(void)srdma_conn_abort(ep->conn, SRDMA_EPROTO,
			       "expected the answer to our connection request");
}

void sp_ep_closed(struct sp_ep *ep, int status, const char *detail)
{
	char text[SP_ERR_TEXT];
	enum sp_ep_state was = ep->state;

	if (was == EP_FAILED || (was == EP_SHUTDOWN && !status))
		return;
	if (!status && was == EP_CONNECTED) {
		/* A goodbye without a BYE first: a peer that closed past its
		 * linger time; what it sent is here. */
		ep->state = EP_SHUTDOWN;
		sp_ep_flush_tx(ep);
		if (ep->eq)
			(void)sp_eq_push(ep->eq, FI_SHUTDOWN, &ep->fid.fid,
					 NULL, NULL, 0);
		return;
	}
	if (!status)
		status = SRDMA_ECLOSED;
	if (was == EP_CONNECTING || was == EP_WAIT_ACCEPT)
		snprintf(text, sizeof(text),
			 "srdma: cannot connect to %s: %s%s%s", ep->peer_text,
			 srdma_strerror(status), detail && *detail ? " " : "",
			 detail ? detail : "");
	else
		snprintf(text, sizeof(text),
			 "srdma: connection with %s failed: %s%s%s",
			 ep->peer_text, srdma_strerror(status),
			 detail && *detail ? " " : "", detail ? detail : "");
	sp_log(SRDMA_LOG_WARN, "%s", text + strlen("srdma: "));
	if (was == EP_CONNECTING || was == EP_WAIT_ACCEPT) {
		char why[SP_ERR_TEXT];

		snprintf(why, sizeof(why), "%s%s%s", srdma_strerror(status),
			 detail && *detail ? " " : "", detail ? detail : "");
		sp_refused_note(ep->fab, ep->peer_text, status, why);
	}
	sp_ep_fail(ep, status, text);
	if (ep->eq)
		(void)sp_eq_push_err(ep->eq, &ep->fid.fid, ep->fid.fid.context,
				     was == EP_CONNECTED
					     ? sp_srdma_to_fi(status)
					     : FI_ECONNREFUSED,
				     status, text, NULL, 0);
}

static int ep_shutdown(struct fid_ep *fid, uint64_t flags)
{
	struct sp_ep *ep = SP_CONTAINER(fid, struct sp_ep, fid);

	sp_lock(ep->fab);
	if (ep->conn && ep->state == EP_CONNECTED) {
		/* BYE in order behind our data; the peer closes. */
		struct sp_rec r = {.type = SP_REC_BYE};
		uint8_t rec[SP_REC_HDR_MAX];

		(void)srdma_send(ep->conn, rec, sp_rec_encode(rec, &r));
		ep->state = EP_SHUTDOWN;
	}
	sp_unlock(ep->fab);
	return 0;
}

static int ep_getname(fid_t fid, void *addr, size_t *addrlen)
{
	struct sp_ep *ep = SP_CONTAINER(fid, struct sp_ep, fid.fid);
	struct sockaddr_in any = {.sin_family = AF_INET};

	if (ep->info->src_addr)
		return copy_name(ep->info->src_addr, ep->info->src_addrlen,
				 addr, addrlen);
	return copy_name(&any, sizeof(any), addr, addrlen);
}

static int ep_getpeer(struct fid_ep *fid, void *addr, size_t *addrlen)
{
	struct sp_ep *ep = SP_CONTAINER(fid, struct sp_ep, fid);

	if (!ep->peer_len)
		return -FI_ENOTCONN;
	return copy_name(&ep->peer, ep->peer_len, addr, addrlen);
}

static int ep_setname(fid_t fid, void *addr, size_t addrlen)
{
	return -FI_ENOSYS;
}

struct fi_ops_cm sp_ep_cm_ops = {
	.size = sizeof(struct fi_ops_cm),
	.setname = ep_setname,
	.getname = ep_getname,
	.getpeer = ep_getpeer,
	.connect = ep_connect,
	.listen = no_listen,
	.accept = ep_accept,
	.reject = no_reject,
	.shutdown = ep_shutdown,
	.join = no_join,
};
