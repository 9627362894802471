/* SPDX-License-Identifier: MIT */
/*
 * The fabric: its lock, the libsrdma contexts it drives, the progress
 * engine, waiting, fi_trywait, and connections finishing their close after
 * fi_close.
 *
 * Progress is the consumer's: sp_progress() runs inside fi_cq_read,
 * fi_eq_read, the waits and fi_trywait. It polls every context
 * (srdma_ctx_poll with no wait), hands each event to the object that owns
 * its connection (srdma_conn_user), then lets endpoints with queued
 * transmits send what their window allows. Waiting is poll(2) on one epoll
 * fd holding every context's srdma_ctx_fd; FI_GETWAIT hands that fd out.
 */
#include <errno.h>
#include <stdio.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "prov.h"

/* The library keeps timers (handshake and close deadlines) that its fd does
 * not signal, so no wait is longer than this. */
enum {
	WAIT_SLICE_MS = 50,
	LINGER_MS = 3000,
	CLOSE_DRAIN_MS = 1000,
	REFUSED_MS = 30000, /* how long an authentication failure is kept */
};

struct sp_refused {
	struct sp_list link;
	char peer[80];
	char text[SP_ERR_TEXT];
	uint64_t expires;
};

struct sp_linger {
	struct sp_owner own;
	struct sp_list link;
	srdma_conn *conn;
	struct sp_sctx *sctx;
	uint64_t deadline; /* ms, CLOCK_MONOTONIC */
	int st;		   /* enum linger_state */
};

void sp_lock(struct sp_fabric *f)
{
	pthread_mutex_lock(&f->lock);
}

void sp_unlock(struct sp_fabric *f)
{
	pthread_mutex_unlock(&f->lock);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

int sp_srdma_to_fi(int e)
{
	switch (e) {
	case SRDMA_OK:
		return 0;
	case SRDMA_EINVAL:
		return FI_EINVAL;
	case SRDMA_ENOMEM:
		return FI_ENOMEM;
	case SRDMA_EAGAIN:
		return FI_EAGAIN;
	case SRDMA_ETIMEDOUT:
		return FI_ETIMEDOUT;
	case SRDMA_EMSGSIZE:
		return FI_EMSGSIZE;
	case SRDMA_EUNREACHABLE:
		return FI_EHOSTUNREACH;
	case SRDMA_ENODEV:
		return FI_ENODEV;
	case SRDMA_EREMOTE_ACCESS:
		return FI_EACCES;
	case SRDMA_EINTEGRITY:
	case SRDMA_EREPLAY:
		return FI_EIO;
	case SRDMA_ECLOSED:
	case SRDMA_EPEER:
		return FI_ECONNRESET;
	case SRDMA_ECONNREFUSED:
	case SRDMA_ETLS:
	case SRDMA_ETLS_VERSION:
	case SRDMA_ENOT_TLS:
	case SRDMA_ECERT_UNKNOWN_CA:
	case SRDMA_ECERT_EXPIRED:
	case SRDMA_ECERT_NOT_YET_VALID:
	case SRDMA_ECERT_NAME:
	case SRDMA_ECERT_MISSING:
	case SRDMA_ECERT_REVOKED:
	case SRDMA_ENOT_ALLOWED:
	case SRDMA_EPOLICY:
	case SRDMA_ELIMIT:
		return FI_ECONNREFUSED;
	default:
		return FI_EOTHER;
	}
}

/* ---- peers that failed authentication ---------------------------------- */

static bool permanent(int code)
{
	switch (code) {
	case SRDMA_ETLS_VERSION:
	case SRDMA_ENOT_TLS:
	case SRDMA_ECERT_UNKNOWN_CA:
	case SRDMA_ECERT_EXPIRED:
	case SRDMA_ECERT_NOT_YET_VALID:
	case SRDMA_ECERT_NAME:
	case SRDMA_ECERT_MISSING:
	case SRDMA_ECERT_REVOKED:
	case SRDMA_ENOT_ALLOWED:
	case SRDMA_EPOLICY:
		return true;
	default:
		return false;
	}
}

static void refused_expire(struct sp_fabric *f, bool all)
{
	uint64_t now = now_ms();
	struct sp_list *e, *next;

	for (e = f->refused.next; e != &f->refused; e = next) {
		struct sp_refused *r = SP_CONTAINER(e, struct sp_refused, link);

		next = e->next;
		if (all || now >= r->expires) {
			sp_list_del(&r->link);
			free(r);
		}
	}
}

void sp_refused_note(struct sp_fabric *f, const char *peer, int code,
		     const char *text)
{
	struct sp_refused *r;

	if (!permanent(code) || sp_refused_find(f, peer))
		return;
	r = calloc(1, sizeof(*r));
	if (!r)
		return;
	snprintf(r->peer, sizeof(r->peer), "%s", peer);
	snprintf(r->text, sizeof(r->text), "%s", text);
	r->expires = now_ms() + REFUSED_MS;
	sp_list_add_tail(&f->refused, &r->link);
}

const char *sp_refused_find(struct sp_fabric *f, const char *peer)
{
	refused_expire(f, false);
	for (struct sp_list *e = f->refused.next; e != &f->refused;
	     e = e->next) {
		struct sp_refused *r = SP_CONTAINER(e, struct sp_refused, link);

		if (!strcmp(r->peer, peer))
			return r->text;
	}
	return NULL;
}

/* ---- libsrdma contexts ------------------------------------------------- */

static void lib_log(void *arg, int level, const char *line)
{
	(void)arg;
	sp_log(level, "%s", line);
}

int sp_sctx_new(struct sp_fabric *f, bool server, struct sp_sctx **out)
{
	const struct sp_conf *c = &f->conf;
	struct epoll_event ev = {.events = EPOLLIN};
	struct srdma_config cfg;
	char *allow_buf = NULL, **allow = NULL;
	struct sp_sctx *s;
	int rc;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -FI_ENOMEM;
	if (server && c->allow) {
		/* "a,b,c" as the NULL-terminated list libsrdma takes; it
		 * copies what it keeps. */
		size_t n = 2;

		for (const char *p = c->allow; *p; p++)
			n += *p == ',';
		allow_buf = strdup(c->allow);
		allow = calloc(n, sizeof(*allow));
		if (!allow_buf || !allow) {
			free(allow_buf);
			free(allow);
			free(s);
			return -FI_ENOMEM;
		}
		n = 0;
		for (char *save = NULL, *t = strtok_r(allow_buf, ", ", &save);
		     t; t = strtok_r(NULL, ", ", &save))
			allow[n++] = t;
	}
	srdma_config_init(&cfg, server ? SRDMA_ROLE_SERVER : SRDMA_ROLE_CLIENT);
	cfg.transport = c->transport;
	cfg.provider = c->ofi_provider;
	cfg.certs_dir = c->certs;
	cfg.cert_file = c->cert;
	cfg.key_file = c->key;
	cfg.ca_file = c->ca;
	cfg.peer_name = c->peer_name;
	if (!server)
		cfg.identity = c->identity;
	cfg.protect = c->protect;
	cfg.max_msg = c->max_msg;
	cfg.queue_depth = c->queue_depth;
	/* Connections are made as peers ask; no spare kits per listener. */
	cfg.no_resource_pool = 1;
	cfg.log_fn = lib_log;
	cfg.log_level = sp_log_level < 0 ? SRDMA_LOG_ERROR : sp_log_level;
	cfg.allow = (const char *const *)allow;
	rc = srdma_ctx_create(&cfg, &s->ctx);
	free(allow);
	free(allow_buf);
	if (rc < 0) {
		sp_log(SRDMA_LOG_ERROR, "cannot set up srdma (%s): %s",
		       server ? "listening" : "connecting",
		       srdma_error_detail());
		free(s);
		return rc == SRDMA_ENOMEM ? -FI_ENOMEM : -FI_ENODATA;
	}
	ev.data.ptr = s;
	if (epoll_ctl(f->epfd, EPOLL_CTL_ADD, srdma_ctx_fd(s->ctx), &ev) != 0) {
		rc = -errno;
		srdma_ctx_destroy(s->ctx);
		free(s);
		return rc;
	}
	s->fab = f;
	s->server = server;
	s->refs = 1;
	sp_list_add_tail(&f->sctxs, &s->link);
	*out = s;
	return 0;
}

void sp_sctx_put(struct sp_sctx *s)
{
	if (!s || --s->refs > 0)
		return;
	if (s->fab->client == s)
		s->fab->client = NULL;
	sp_list_del(&s->link);
	epoll_ctl(s->fab->epfd, EPOLL_CTL_DEL, srdma_ctx_fd(s->ctx), NULL);
	srdma_ctx_destroy(s->ctx);
	free(s);
}

int sp_client_ctx(struct sp_fabric *f, struct sp_sctx **out)
{
	int rc;

	if (!f->client) {
		rc = sp_sctx_new(f, false, &f->client);
		if (rc)
			return rc;
	}
	f->client->refs++;
	*out = f->client;
	return 0;
}

/* ---- closing connections ------------------------------------------------ */

/*
 * libsrdma's goodbye travels on the TLS control channel and can overtake
 * records still on the fabric, so a close would lose what was sent just
 * before it. The side that closes first sends a BYE record instead, in
 * order behind its data, and waits for the peer, which has then read
 * everything, to close the connection; only past LINGER_MS does it send
 * the goodbye itself, and past one more second it aborts.
 */
enum linger_state { L_BYE_PENDING, L_WAIT_PEER, L_CLOSING };

static int send_bye(srdma_conn *conn)
{
	struct sp_rec r = {.type = SP_REC_BYE};
	uint8_t rec[SP_REC_HDR_MAX];

	return srdma_send(conn, rec, sp_rec_encode(rec, &r));
}

static void linger_free(struct sp_linger *l)
{
	sp_list_del(&l->link);
	srdma_conn_destroy(l->conn);
	sp_sctx_put(l->sctx);
	free(l);
}

void sp_conn_linger(struct sp_fabric *f, srdma_conn *conn, struct sp_sctx *s)
{
	struct sp_linger *l = calloc(1, sizeof(*l));
	int rc = l ? send_bye(conn) : SRDMA_ENOMEM;

	if (rc < 0 && rc != SRDMA_EAGAIN) {
		/* Not established (or no memory): nothing to wait for, and
		 * a connection in set-up is failed rather than waited on. */
		free(l);
		(void)srdma_conn_abort(conn, SRDMA_ECLOSED,
				       "the endpoint was closed");
		srdma_conn_destroy(conn);
		sp_sctx_put(s);
		return;
	}
	l->own.kind = SP_OWN_LINGER;
	l->conn = conn;
	l->sctx = s;
	l->st = rc == 0 ? L_WAIT_PEER : L_BYE_PENDING;
	l->deadline = now_ms() + LINGER_MS;
	srdma_conn_set_user(conn, &l->own);
	sp_list_add_tail(&f->closing, &l->link);
}

static void linger_event(struct sp_linger *l, const struct srdma_event *ev)
{
	struct sp_rec r;

	if (ev->type == SRDMA_EV_CLOSED) {
		linger_free(l);
		return;
	}
	/* Both sides closed at once: the peer's BYE means it has read ours
	 * or never will; end it. Other records are dropped. */
	if (ev->type == SRDMA_EV_RECV && l->st != L_CLOSING &&
	    sp_rec_parse(ev->data, ev->len, &r) == 0 && r.type == SP_REC_BYE) {
		(void)srdma_conn_close(l->conn);
		l->st = L_CLOSING;
		l->deadline = now_ms() + CLOSE_DRAIN_MS;
	}
}

static void linger_step(struct sp_fabric *f, bool all)
{
	struct sp_list *e, *next;
	uint64_t now = now_ms();

	for (e = f->closing.next; e != &f->closing; e = next) {
		struct sp_linger *l = SP_CONTAINER(e, struct sp_linger, link);

		next = e->next;
		if (l->st == L_BYE_PENDING && send_bye(l->conn) == 0)
			l->st = L_WAIT_PEER;
		if (!all && now < l->deadline)
			continue;
		if (!all && l->st != L_CLOSING) {
			(void)srdma_conn_close(l->conn);
			l->st = L_CLOSING;
			l->deadline = now + CLOSE_DRAIN_MS;
			continue;
		}
		(void)srdma_conn_abort(l->conn, SRDMA_ECLOSED,
				       "the endpoint was closed");
		linger_free(l);
	}
}

/* ---- progress ----------------------------------------------------------- */

static void dispatch(struct sp_sctx *s, const struct srdma_event *ev)
{
	struct sp_owner *o;

	if (ev->type == SRDMA_EV_REJECTED) {
		/* A peer that left during set-up (ofi_rxm closes one of two
		 * crossing connects) is no news; a refusal is. */
		sp_log(ev->status == SRDMA_ECLOSED ? SRDMA_LOG_INFO
						   : SRDMA_LOG_WARN,
		       "refused a peer: %s%s%s", srdma_strerror(ev->status),
		       ev->detail && *ev->detail ? " " : "",
		       ev->detail ? ev->detail : "");
		return;
	}
	if (!ev->conn)
		return;
	if (ev->type == SRDMA_EV_ACCEPTED) {
		sp_pep_accepted(s, ev->conn);
		return;
	}
	o = srdma_conn_user(ev->conn);
	if (!o)
		return;
	switch (o->kind) {
	case SP_OWN_EP:
		sp_ep_event(SP_CONTAINER(o, struct sp_ep, own), ev);
		break;
	case SP_OWN_CONNREQ:
		sp_creq_event(SP_CONTAINER(o, struct sp_creq, own), ev);
		break;
	case SP_OWN_LINGER:
		linger_event(SP_CONTAINER(o, struct sp_linger, own), ev);
		break;
	}
}

static void poll_ctx(struct sp_sctx *s)
{
	struct srdma_event evs[32];

	/* Until the context has nothing more: queued events come back
	 * without a pass of its loop, the next call runs one. */
	for (int pass = 0; pass < 64; pass++) {
		int n = srdma_ctx_poll(s->ctx, evs, 32, 0);

		if (n < 0) {
			sp_log(SRDMA_LOG_WARN, "srdma_ctx_poll: %s",
			       srdma_error_detail());
			return;
		}
		for (int i = 0; i < n; i++)
			dispatch(s, &evs[i]);
		if (n == 0)
			return;
	}
}

void sp_progress(struct sp_fabric *f)
{
	struct sp_list *e, *next;
	uint64_t v;

	if (f->in_progress)
		return;
	f->in_progress = true;
	while (read(f->sigfd, &v, sizeof(v)) == (ssize_t)sizeof(v)) {
	}
	for (e = f->sctxs.next; e != &f->sctxs; e = next) {
		struct sp_sctx *s = SP_CONTAINER(e, struct sp_sctx, link);

		s->refs++;
		poll_ctx(s);
		next = e->next;
		sp_sctx_put(s);
	}
	for (e = f->busy.next; e != &f->busy; e = next) {
		next = e->next;
		sp_ep_push(SP_CONTAINER(e, struct sp_ep, busy_link));
	}
	if (!sp_list_empty(&f->closing))
		linger_step(f, false);
	f->in_progress = false;
}

void sp_wait(struct sp_fabric *f, int timeout_ms)
{
	struct pollfd p = {.fd = f->epfd, .events = POLLIN};

	if (timeout_ms < 0 || timeout_ms > WAIT_SLICE_MS)
		timeout_ms = WAIT_SLICE_MS;
	(void)poll(&p, 1, timeout_ms);
}

int sp_wait_fd_new(struct sp_fabric *f)
{
	struct epoll_event ev = {.events = EPOLLIN};
	int fd = epoll_create1(EPOLL_CLOEXEC);

	if (fd < 0)
		return -1;
	if (epoll_ctl(fd, EPOLL_CTL_ADD, f->epfd, &ev) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

void sp_signal(struct sp_fabric *f)
{
	uint64_t one = 1;

	if (write(f->sigfd, &one, sizeof(one)) < 0) {
		/* the counter is full: a wake-up is pending anyway */
	}
}

/* ---- fabric object ------------------------------------------------------ */

static int fabric_close(struct fid *fid)
{
	struct sp_fabric *f = SP_CONTAINER(fid, struct sp_fabric, fid.fid);
	uint64_t dl = now_ms() + CLOSE_DRAIN_MS;

	sp_lock(f);
	if (f->refs > 0) {
		sp_unlock(f);
		return -FI_EBUSY;
	}
	/* Let orderly closes finish (the peer answers our goodbye). */
	while (!sp_list_empty(&f->closing) && now_ms() < dl) {
		sp_progress(f);
		sp_unlock(f);
		sp_wait(f, 10);
		sp_lock(f);
	}
	linger_step(f, true);
	refused_expire(f, true);
	sp_ep_free_zombies(f, NULL);
	while (!sp_list_empty(&f->sctxs)) {
		struct sp_sctx *s =
			SP_CONTAINER(f->sctxs.next, struct sp_sctx, link);

		s->refs = 1;
		sp_sctx_put(s);
	}
	sp_unlock(f);
	close(f->epfd);
	close(f->sigfd);
	pthread_mutex_destroy(&f->lock);
	sp_conf_free(&f->conf);
	free(f);
	return 0;
}

static int fabric_trywait(struct fid_fabric *fabric, struct fid **fids,
			  int count)
{
	struct sp_fabric *f = SP_CONTAINER(fabric, struct sp_fabric, fid);
	int rc = 0;

	sp_lock(f);
	sp_progress(f);
	for (int i = 0; i < count && !rc; i++) {
		switch (fids[i]->fclass) {
		case FI_CLASS_CQ:
			if (sp_cq_ready(SP_CONTAINER(fids[i], struct sp_cq,
						     fid.fid)))
				rc = -FI_EAGAIN;
			break;
		case FI_CLASS_EQ:
			if (sp_eq_ready(SP_CONTAINER(fids[i], struct sp_eq,
						     fid.fid)))
				rc = -FI_EAGAIN;
			break;
		default:
			rc = -FI_EINVAL;
		}
	}
	sp_unlock(f);
	return rc;
}

static int no_wait_open(struct fid_fabric *fabric, struct fi_wait_attr *attr,
			struct fid_wait **waitset)
{
	return -FI_ENOSYS;
}

static struct fi_ops fabric_fi_ops = {
	.size = sizeof(struct fi_ops),
	.close = fabric_close,
	.bind = sp_no_bind,
	.control = sp_no_control,
	.ops_open = sp_no_ops_open,
};

static struct fi_ops_fabric fabric_ops = {
	.size = sizeof(struct fi_ops_fabric),
	.domain = sp_domain_open,
	.passive_ep = sp_passive_ep,
	.eq_open = sp_eq_open,
	.wait_open = no_wait_open,
	.trywait = fabric_trywait,
};

int sp_fabric_open(struct fi_fabric_attr *attr, struct fid_fabric **fabric,
		   void *context)
{
	struct epoll_event ev = {.events = EPOLLIN};
	struct sp_fabric *f;
	int rc;

	if (attr->name && strcmp(attr->name, SP_NAME))
		return -FI_ENODATA;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -FI_ENOMEM;
	rc = sp_conf_load(&f->conf);
	if (rc)
		goto out_free;
	sp_log_level = f->conf.log_level;
	f->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (f->epfd < 0) {
		rc = -errno;
		goto out_conf;
	}
	f->sigfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (f->sigfd < 0) {
		rc = -errno;
		goto out_epfd;
	}
	ev.data.ptr = NULL;
	if (epoll_ctl(f->epfd, EPOLL_CTL_ADD, f->sigfd, &ev) != 0) {
		rc = -errno;
		goto out_sigfd;
	}
	pthread_mutex_init(&f->lock, NULL);
	sp_list_init(&f->sctxs);
	sp_list_init(&f->busy);
	sp_list_init(&f->closing);
	sp_list_init(&f->refused);
	sp_list_init(&f->zombies);
	f->fid.fid.fclass = FI_CLASS_FABRIC;
	f->fid.fid.context = context;
	f->fid.fid.ops = &fabric_fi_ops;
	f->fid.ops = &fabric_ops;
	f->fid.api_version = FI_VERSION(FI_MAJOR_VERSION, FI_MINOR_VERSION);
	*fabric = &f->fid;
	return 0;

out_sigfd:
	close(f->sigfd);
out_epfd:
	close(f->epfd);
out_conf:
	sp_conf_free(&f->conf);
out_free:
	free(f);
	return rc;
}

int sp_wait_control(enum fi_wait_obj wait, int wait_fd, int command, void *arg)
{
	switch (command) {
	case FI_GETWAIT:
		if (wait == FI_WAIT_NONE)
			return -FI_ENODATA;
		*(int *)arg = wait_fd;
		return 0;
	case FI_GETWAITOBJ:
		*(enum fi_wait_obj *)arg = wait;
		return 0;
	default:
		return -FI_ENOSYS;
	}
}

const char *sp_strerror_out(const char *s, char *buf, size_t len)
{
	if (buf && len) {
		strncpy(buf, s, len - 1);
		buf[len - 1] = '\0';
		return buf;
	}
	return s;
}
