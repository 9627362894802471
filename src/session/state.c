/* SPDX-License-Identifier: MIT */
/*
 * The connection state machine: the one dispatcher for control messages,
 * the control channel's I/O, and the TLS handshake driver.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <openssl/crypto.h>

#include "base/text.h"
#include "session/conn.h"

const char *srdma__state_name(enum conn_state s)
{
	static const char *const n[] = {"tcp-connecting", "tls",     "hello",
					"prepare",	  "params",  "fabric",
					"established",	  "closing", "closed",
					"failed"};
	return s <= ST_FAILED ? n[s] : "?";
}

const char *srdma__who(const struct srdma_conn *c)
{
	static _Thread_local char buf[256];
	char id[128] = "";

	/* The identity comes from the peer's certificate: printable only. */
	if (c->ctrl)
		srdma__safe_text(id, sizeof(id),
				 srdma__ctrl_peer_identity(c->ctrl),
				 sizeof(id));
	snprintf(buf, sizeof(buf), "%s%s%s%s", c->peer_addr, *id ? " (" : "",
		 id, *id ? ")" : "");
	return buf;
}

/*
 * A control connection whose peer vanished (link down, host gone) must fail
 * in bounded time even when nothing is being sent: TCP keepalive probes an
 * idle socket, TCP_USER_TIMEOUT bounds unacknowledged data.
 */
void srdma__tune_ctrl_socket(int fd)
{
	int one = 1, idle = 10, intvl = 5, cnt = 3;
	unsigned int user_timeout_ms = 30000;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms,
		   sizeof(user_timeout_ms));
}

/* Debug log of set-up phases with their time since the start. */
void srdma__phase(const struct srdma_conn *c, const char *what)
{
	srdma__log(lg(c), SRDMA_LOG_DEBUG, "set-up with %s: %s at %.2f ms",
		   c->peer_addr, what,
		   (double)(srdma__now_ns() - c->t_start_ns) / 1e6);
}

void srdma__queue(struct srdma_conn *c, enum srdma_event_type type, int status,
		  void *user, const char *detail)
{
	if (srdma__queue_event(c->ctx, type, status, c, user, detail, NULL) < 0)
		srdma__log(lg(c), SRDMA_LOG_ERROR, "dropped an event: %s",
			   srdma_error_detail());
}

void srdma__update_interest(struct srdma_conn *c)
{
	uint32_t ev = EPOLLIN;

	if (!c->fd_reg || !c->ctrl)
		return;
	if (c->state == ST_TLS ? srdma__ctrl_want_write(c->ctrl)
			       : srdma__ctrl_pending_out(c->ctrl))
		ev |= EPOLLOUT;
	IGNORE_RESULT(srdma__loop_mod(c->fd_reg, ev));
}

/* Why the control connection ended under us, in words for the user. */
static int ctrl_lost(struct srdma_conn *c, int n)
{
	/* The fabric failed first (a port went down, say) and we were
	 * waiting for the peer's reason: its control connection going too
	 * (often the same link) adds nothing; ours is the better sentence.
	 * Not when ours was a guess: libfabric tcp reports a refused RDMA
	 * access only by dropping the connection, which a peer that died
	 * does too; a peer that refused an access would have said so. */
	if (c->fabric_fail_code && c->fabric_fail_code != SRDMA_EREMOTE_ACCESS)
		return srdma__err(c->fabric_fail_code, "%s",
				  c->fabric_fail_detail);
	if (n != SRDMA_ECLOSED) {
		/* e.g. the server rejected our certificate: TLS 1.3 reports
		 * it on the first read; the detail says so already. */
		return n;
	}
	/* After TLS and before the server's HELLO (our HELLO may still be
	 * on its way out when the close arrives). */
	if (!c->server && c->tls_ok && c->state <= ST_HELLO)
		return srdma__err(SRDMA_ENOT_ALLOWED,
				  "the server closed the connection right "
				  "after TLS: is this client's identity on "
				  "its allow-list?");
	return srdma__err(
		n, "%s closed the control connection%s",
		c->server ? "the client" : "the server",
		c->state == ST_ESTABLISHED ? " (did it exit or crash?)" : "");
}

int srdma__conn_send_msg(struct srdma_conn *c, const struct srdma__msg *m)
{
	uint8_t buf[SRDMA_WIRE_HDR_LEN + SRDMA_WIRE_MAX_BODY];
	int n = srdma__msg_encode(m, buf, sizeof(buf));

	if (n < 0)
		return n;
	n = srdma__ctrl_send(c->ctrl, buf, (size_t)n);
	srdma__update_interest(c);
	if (n == SRDMA_ECLOSED)
		return ctrl_lost(c, n); /* the peer closed before we wrote */
	return n < 0 && n != SRDMA_EAGAIN ? n : 0;
}

/*
 * The transitions the protocol allows (docs/PROTOCOL.md §1), one table per
 * role: the server never connects TCP or prepares a route itself. FAILED is
 * reachable from every state that has not ended; CLOSED and FAILED are final.
 */
#define TO(s) (1u << (s))
enum { ANY_END = TO(ST_FAILED) };
static const uint16_t client_next[ST_COUNT] = {
	[ST_TCP_CONNECTING] = TO(ST_TLS) | ANY_END,
	/* back to TCP: the server was busy, connect again (api.c) */
	[ST_TLS] = TO(ST_HELLO) | TO(ST_TCP_CONNECTING) | ANY_END,
	[ST_HELLO] = TO(ST_PREPARE) | TO(ST_PARAMS) | ANY_END,
	[ST_PREPARE] = TO(ST_PARAMS) | ANY_END,
	[ST_PARAMS] = TO(ST_FABRIC) | ANY_END,
	[ST_FABRIC] = TO(ST_ESTABLISHED) | ANY_END,
	[ST_ESTABLISHED] = TO(ST_CLOSING) | ANY_END,
	[ST_CLOSING] = TO(ST_CLOSED) | ANY_END,
};
static const uint16_t server_next[ST_COUNT] = {
	[ST_TLS] = TO(ST_HELLO) | ANY_END,
	[ST_HELLO] = TO(ST_PARAMS) | ANY_END,
	[ST_PARAMS] = TO(ST_FABRIC) | ANY_END,
	[ST_FABRIC] = TO(ST_ESTABLISHED) | ANY_END,
	[ST_ESTABLISHED] = TO(ST_CLOSING) | ANY_END,
	[ST_CLOSING] = TO(ST_CLOSED) | ANY_END,
};
#undef TO

void srdma__conn_init_state(struct srdma_conn *c, bool server)
{
	c->server = server;
	c->state = server ? ST_TLS : ST_TCP_CONNECTING;
}

bool srdma__conn_may_move(bool server, enum conn_state from, enum conn_state to)
{
	const uint16_t *t = server ? server_next : client_next;

	return from < ST_COUNT && to < ST_COUNT && (t[from] >> to) & 1u;
}

int srdma__conn_set_state(struct srdma_conn *c, enum conn_state to)
{
	ENSURE(srdma__conn_may_move(c->server, c->state, to), SRDMA_ESTATE,
	       "internal error: a %s connection cannot move from %s to %s",
	       c->server ? "server" : "client", srdma__state_name(c->state),
	       srdma__state_name(to));
	c->state = to;
	return 0;
}

bool srdma__conn_step(struct srdma_conn *c, int rc, enum conn_state next)
{
	if (c->state >= ST_CLOSED)
		return false;
	if (rc == 0 && next != c->state)
		rc = srdma__conn_set_state(c, next);
	if (rc < 0) {
		srdma__conn_fail(c, rc, srdma_error_detail());
		return false;
	}
	return true;
}

static int on_goodbye(struct srdma_conn *c, const struct srdma__msg_goodbye *g,
		      enum conn_state *next)
{
	ENSURE(c->state == ST_ESTABLISHED || c->state == ST_CLOSING,
	       SRDMA_ECLOSED, "the peer said goodbye during set-up");
	/* Its records travel on the fabric, the goodbye on TLS: read up to
	 * the last one it sent before the fabric goes (lifecycle.c). More
	 * may already have arrived: a closing peer still acknowledges and
	 * returns credits for what we send while it drains us. */
	c->peer_sent = g->sent;
	c->goodbye_rcvd = true;
	if (c->state == ST_ESTABLISHED) {
		c->close_deadline_ms = srdma__now_ms() + CLOSE_GRACE_MS;
		srdma__finish_ops(c, SRDMA_ECLOSED);
		*next = ST_CLOSING;
	}
	if (!c->goodbye_sent) {
		struct srdma__msg m = {.type = SRDMA_MSG_GOODBYE};
		m.u.goodbye.sent = c->tx.seq;
		IGNORE_RESULT(srdma__conn_send_msg(c, &m));
		c->goodbye_sent = true;
	}
	return 0;
}

/* The peer failed the connection and told us why: its code and sentence
 * become ours, and no ERROR goes back. */
static int on_peer_error(struct srdma_conn *c, const struct srdma__msg_error *e)
{
	char text[SRDMA_WIRE_MAX_TEXT + 1];
	int code = e->code;

	if (code >= 0 || code < SRDMA_ERROR_MIN)
		code = SRDMA_EPEER;
	c->goodbye_rcvd = true;
	c->peer_failed = true;
	/* The peer's words: one printable line before anyone logs them. */
	srdma__safe_text(text, sizeof(text), e->text, e->text_len);
	return srdma__err(code, "%s said: %s", c->server ? "client" : "server",
			  text);
}

/* Checks the message against the state and runs its handler; *next is the
 * state the handler asks for. */
static int handle_msg(struct srdma_conn *c, const struct srdma__msg *m,
		      enum conn_state *next)
{
	switch (m->type) {
	case SRDMA_MSG_HELLO:
		ENSURE(c->state == ST_HELLO, SRDMA_EPROTO,
		       "unexpected HELLO in state %s",
		       srdma__state_name(c->state));
		return c->server ? srdma__server_on_hello(c, &m->u.hello, next)
				 : srdma__client_on_hello(c, &m->u.hello, next);
	case SRDMA_MSG_PARAMS:
		ENSURE(c->state == ST_PARAMS, SRDMA_EPROTO,
		       "unexpected PARAMS in state %s",
		       srdma__state_name(c->state));
		return c->server
			       ? srdma__server_on_params(c, &m->u.params, next)
			       : srdma__client_on_params(c, &m->u.params, next);
	case SRDMA_MSG_REGION:
		if (c->state == ST_CLOSING)
			return 0; /* crossed our goodbye: moot */
		if (c->state == ST_FABRIC) {
			/* The peer is up before our fabric event arrived:
			 * hold the grant until we are established too. */
			ENSURE(c->nearly < 4, SRDMA_EPROTO,
			       "too many region grants before the connection "
			       "was established");
			c->early_grants[c->nearly++] = m->u.region;
			return 0;
		}
		ENSURE(c->state == ST_ESTABLISHED, SRDMA_EPROTO,
		       "unexpected REGION grant in state %s",
		       srdma__state_name(c->state));
		return srdma__on_region_msg(c, &m->u.region);
	case SRDMA_MSG_REGION_REVOKE:
		srdma__on_revoke(c, m->u.revoke.region_id);
		return 0;
	case SRDMA_MSG_GOODBYE:
		return on_goodbye(c, &m->u.goodbye, next);
	case SRDMA_MSG_ERROR:
		return on_peer_error(c, &m->u.error);
	default:
		return srdma__err(SRDMA_EPROTO, "unknown control message %u",
				  m->type);
	}
}

/*
 * The one dispatcher for control messages: the handler's error fails the
 * connection, its success moves the state through the table.
 */
bool srdma__conn_dispatch_msg(struct srdma_conn *c, const struct srdma__msg *m)
{
	enum conn_state next = c->state;
	int rc = handle_msg(c, m, &next);

	if (!srdma__conn_step(c, rc, next))
		return false;
	if (m->type == SRDMA_MSG_GOODBYE)
		srdma__start_disconnect(c);
	return c->state < ST_CLOSED;
}

void srdma__read_ctrl(struct srdma_conn *c)
{
	for (;;) {
		int n, fl;
		struct srdma__msg m;
		bool alive;

		if (c->state >= ST_CLOSED)
			return;
		/* Parse whole frames first. */
		while (c->cin_len >= SRDMA_WIRE_HDR_LEN) {
			fl = srdma__msg_frame_len(c->cin, c->cin_len);
			if (!srdma__conn_step(c, fl < 0 ? fl : 0, c->state))
				return;
			if (c->cin_len < (size_t)fl)
				break;
			n = srdma__msg_decode(c->cin, (size_t)fl, &m);
			memmove(c->cin, c->cin + fl, c->cin_len - (size_t)fl);
			c->cin_len -= (size_t)fl;
			alive = n == 0 ? srdma__conn_dispatch_msg(c, &m)
				       : srdma__conn_step(c, n, c->state);
			if (m.type == SRDMA_MSG_PARAMS)
				OPENSSL_cleanse(&m, sizeof(m));
			if (!alive)
				return;
		}
		n = srdma__ctrl_recv(c->ctrl, c->cin + c->cin_len,
				     sizeof(c->cin) - c->cin_len);
		if (n == SRDMA_EAGAIN)
			return;
		if (n < 0) {
			if (c->state == ST_CLOSING && c->goodbye_rcvd) {
				srdma__maybe_finish_close(c);
				return;
			}
			srdma__conn_step(c, ctrl_lost(c, n), c->state);
			return;
		}
		c->cin_len += (size_t)n;
	}
}

/* TLS finished: the peer is authenticated. The server checks its client
 * limits (and can now tell a refused client why); the client opens with
 * HELLO, and on ofi its PARAMS right behind. */
static int tls_done(struct srdma_conn *c, enum conn_state *next)
{
	c->tls_ok = true;
	srdma__phase(c, "TLS done");
	srdma__log(lg(c), SRDMA_LOG_DEBUG, "TLS 1.3 with %s complete%s",
		   srdma__who(c),
		   srdma__ctrl_resumed(c->ctrl) ? " (resumed)" : "");
	/* A refused ticket falls back to a full handshake: say why, once. */
	if (srdma__ctrl_resumption(c->ctrl) == SRDMA__RESUME_REFUSED)
		srdma__log(lg(c), SRDMA_LOG_INFO,
			   "full TLS handshake with %s: %s", srdma__who(c),
			   srdma__ctrl_resume_note(c->ctrl));
	GUARD(srdma__ctx_admit(c));
	*next = ST_HELLO;
	if (c->server)
		return 0;
	GUARD(srdma__send_hello(c));
	if (c->params_early) {
		GUARD(srdma__send_client_params(c));
		srdma__phase(c, "PARAMS sent with HELLO");
	}
	return 0;
}

/* Client: the non-blocking TCP connect finished; start TLS. */
static int tcp_connected(struct srdma_conn *c, enum conn_state *next)
{
	char key[300];
	int err = 0;
	socklen_t l = sizeof(err);

	getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
	if (err)
		return srdma__err(err == ECONNREFUSED ? SRDMA_ECONNREFUSED
						      : SRDMA_EUNREACHABLE,
				  "cannot connect to %s:%u: %s%s", c->host,
				  c->port, strerror(err),
				  err == ECONNREFUSED
					  ? " (is the server running there?)"
					  : "");
	/* Tickets are cached per server: resumption needs the same name,
	 * host and port. */
	snprintf(key, sizeof(key), "%s:%u", c->host, c->port);
	GUARD(srdma__ctrl_create_client(
		c->ctx->tls, c->fd,
		c->ctx->cfg.peer_name ? c->ctx->cfg.peer_name : c->host, key,
		&c->ctrl));
	*next = ST_TLS;
	return 0;
}

/* One step of the TLS handshake; *done once it finished. */
static int tls_step(struct srdma_conn *c, bool *done)
{
	int rc = srdma__ctrl_handshake(c->ctrl);

	*done = false;
	if (rc == SRDMA_EAGAIN) {
		/* The ClientHello is out: use the wait (the detail of a
		 * failure says what went wrong). */
		rc = srdma__prepare_early(c);
		if (rc == 0)
			rc = srdma__resolve_early(c);
		return rc < 0 ? SRDMA_EFABRIC : 0;
	}
	GUARD(rc);
	*done = true;
	return 0;
}

void srdma__on_ctrl_fd(void *arg, uint32_t events)
{
	struct srdma_conn *c = arg;
	enum conn_state next;
	bool done;
	int rc;

	if (c->state >= ST_CLOSED)
		return;
	if (c->state == ST_TCP_CONNECTING) {
		next = c->state;
		rc = tcp_connected(c, &next);
		if (!srdma__conn_step(c, rc, next))
			return;
	}
	if (c->state == ST_TLS) {
		rc = tls_step(c, &done);
		if (rc < 0 && srdma__client_busy_retry(c, rc))
			return;
		if (!srdma__conn_step(c, rc, c->state))
			return;
		if (!done) {
			srdma__update_interest(c);
			return;
		}
		next = c->state;
		rc = tls_done(c, &next);
		if (!srdma__conn_step(c, rc, next))
			return;
	}
	if (c->ctrl && (events & EPOLLOUT)) {
		rc = srdma__ctrl_flush(c->ctrl);
		if (rc < 0 && rc != SRDMA_EAGAIN &&
		    !srdma__conn_step(c,
				      srdma__err(SRDMA_ECLOSED,
						 "the control connection "
						 "broke"),
				      c->state))
			return;
	}
	if (c->state >= ST_HELLO)
		srdma__read_ctrl(c);
	srdma__update_interest(c);
}
