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
	const char *id = c->ctrl ? srdma__ctrl_peer_identity(c->ctrl) : NULL;

	snprintf(buf, sizeof(buf), "%s%s%s%s", c->peer_addr,
		 id && *id ? " (" : "", id && *id ? id : "",
		 id && *id ? ")" : "");
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

int srdma__conn_send_msg(struct srdma_conn *c, const struct srdma__msg *m)
{
	uint8_t buf[SRDMA_WIRE_HDR_LEN + SRDMA_WIRE_MAX_BODY];
	int n = srdma__msg_encode(m, buf, sizeof(buf));

	if (n < 0)
		return n;
	n = srdma__ctrl_send(c->ctrl, buf, (size_t)n);
	srdma__update_interest(c);
	return n < 0 && n != SRDMA_EAGAIN ? n : 0;
}

static void on_goodbye(struct srdma_conn *c)
{
	c->goodbye_rcvd = true;
	if (c->state == ST_ESTABLISHED) {
		c->state = ST_CLOSING;
		c->close_deadline_ms = srdma__now_ms() + CLOSE_GRACE_MS;
		srdma__finish_ops(c, SRDMA_ECLOSED);
	}
	if (c->state != ST_CLOSING) {
		srdma__conn_fail(c, SRDMA_ECLOSED,
				 "the peer said goodbye during set-up");
		return;
	}
	if (!c->goodbye_sent) {
		struct srdma__msg m = {.type = SRDMA_MSG_GOODBYE};
		IGNORE_RESULT(srdma__conn_send_msg(c, &m));
		c->goodbye_sent = true;
	}
	srdma__start_disconnect(c);
}

static int handle_msg(struct srdma_conn *c, const struct srdma__msg *m)
{
	switch (m->type) {
	case SRDMA_MSG_HELLO:
		ENSURE(c->state == ST_HELLO, SRDMA_EPROTO,
		       "unexpected HELLO in state %s",
		       srdma__state_name(c->state));
		return c->server ? srdma__server_on_hello(c, &m->u.hello)
				 : srdma__client_on_hello(c, &m->u.hello);
	case SRDMA_MSG_PARAMS:
		ENSURE(c->state == ST_PARAMS, SRDMA_EPROTO,
		       "unexpected PARAMS in state %s",
		       srdma__state_name(c->state));
		return c->server ? srdma__server_on_params(c, &m->u.params)
				 : srdma__client_on_params(c, &m->u.params);
	case SRDMA_MSG_REGION:
		if (c->state == ST_CLOSING)
			return 0; /* crossed our goodbye: moot */
		if (c->state == ST_FABRIC && !c->server) {
			/* The server is up before our fabric event arrived:
			 * hold the grant until we are established too. */
			ENSURE(c->nearly < 4, SRDMA_EPROTO,
			       "too many region grants before the connection "
			       "was established");
			c->early_grants[c->nearly++] = m->u.region;
			return 0;
		}
		ENSURE(c->state == ST_ESTABLISHED && !c->server, SRDMA_EPROTO,
		       "unexpected REGION grant in state %s",
		       srdma__state_name(c->state));
		return srdma__on_region_msg(c, &m->u.region);
	case SRDMA_MSG_REGION_REVOKE:
		srdma__on_revoke(c, m->u.revoke.region_id);
		return 0;
	case SRDMA_MSG_GOODBYE:
		on_goodbye(c);
		return 0;
	case SRDMA_MSG_ERROR: {
		char d[300];
		int code = m->u.error.code;
		if (code >= 0 || code < SRDMA_ERROR_MIN)
			code = SRDMA_EPEER;
		snprintf(d, sizeof(d), "%s said: %s",
			 c->server ? "client" : "server", m->u.error.text);
		c->goodbye_rcvd = true;
		/* Don't echo an ERROR back. */
		struct srdma__ctrl *keep = c->ctrl;
		c->ctrl = NULL;
		srdma__conn_fail(c, code, d);
		c->ctrl = keep;
		return 0;
	}
	default:
		return srdma__err(SRDMA_EPROTO, "unknown control message %u",
				  m->type);
	}
}

void srdma__read_ctrl(struct srdma_conn *c)
{
	for (;;) {
		int n, fl;
		struct srdma__msg m;

		if (c->state >= ST_CLOSED)
			return;
		/* Parse whole frames first. */
		while (c->cin_len >= SRDMA_WIRE_HDR_LEN) {
			fl = srdma__msg_frame_len(c->cin, c->cin_len);
			if (fl < 0) {
				srdma__conn_fail(c, fl, srdma_error_detail());
				return;
			}
			if (c->cin_len < (size_t)fl)
				break;
			n = srdma__msg_decode(c->cin, (size_t)fl, &m);
			if (n == 0)
				n = handle_msg(c, &m);
			if (m.type == SRDMA_MSG_PARAMS)
				OPENSSL_cleanse(&m, sizeof(m));
			memmove(c->cin, c->cin + fl, c->cin_len - (size_t)fl);
			c->cin_len -= (size_t)fl;
			if (n < 0) {
				srdma__conn_fail(c, n, srdma_error_detail());
				return;
			}
			if (c->state >= ST_CLOSED)
				return;
		}
		n = srdma__ctrl_recv(c->ctrl, c->cin + c->cin_len,
				     sizeof(c->cin) - c->cin_len);
		if (n == SRDMA_EAGAIN)
			return;
		if (n < 0) {
			char d[300];
			if (c->state == ST_CLOSING && c->goodbye_rcvd) {
				srdma__maybe_finish_close(c);
				return;
			}
			if (n != SRDMA_ECLOSED) {
				/* e.g. the server rejected our certificate:
				 * TLS 1.3 reports it on the first read. */
				snprintf(d, sizeof(d), "%s",
					 srdma_error_detail());
			} else if (!c->server && c->state == ST_HELLO) {
				snprintf(d, sizeof(d),
					 "the server closed the connection "
					 "right "
					 "after TLS: is this client's identity "
					 "on "
					 "its allow-list?");
				n = SRDMA_ENOT_ALLOWED;
			} else {
				snprintf(d, sizeof(d),
					 "%s closed the control connection%s",
					 c->server ? "the client"
						   : "the server",
					 c->state == ST_ESTABLISHED
						 ? " (did it exit or crash?)"
						 : "");
			}
			srdma__conn_fail(c, n, d);
			return;
		}
		c->cin_len += (size_t)n;
	}
}

static void tls_done(struct srdma_conn *c)
{
	struct srdma_ctx *ctx = c->ctx;

	srdma__phase(c, "TLS done");
	srdma__log(lg(c), SRDMA_LOG_DEBUG, "TLS 1.3 with %s complete%s",
		   srdma__who(c),
		   srdma__ctrl_resumed(c->ctrl) ? " (resumed)" : "");
	/* A refused ticket falls back to a full handshake: say why, once. */
	if (srdma__ctrl_resumption(c->ctrl) == SRDMA__RESUME_REFUSED)
		srdma__log(lg(c), SRDMA_LOG_INFO,
			   "full TLS handshake with %s: %s", srdma__who(c),
			   srdma__ctrl_resume_note(c->ctrl));
	if (c->server && ctx->nclients > ctx->cfg.max_clients) {
		char d[200];
		c->state = ST_HELLO; /* authenticated: tell it why */
		snprintf(d, sizeof(d),
			 "the server is at its limit of %u clients; try "
			 "again later",
			 ctx->cfg.max_clients);
		srdma__conn_fail(c, SRDMA_ELIMIT, d);
		return;
	}
	c->state = ST_HELLO;
	if (c->server)
		return;
	srdma__send_hello(c);
	if (c->params_early && c->state == ST_HELLO) {
		if (srdma__send_client_params(c) < 0) {
			srdma__conn_fail(c, SRDMA_ECLOSED,
					 srdma_error_detail());
			return;
		}
		srdma__phase(c, "PARAMS sent with HELLO");
	}
}

void srdma__on_ctrl_fd(void *arg, uint32_t events)
{
	struct srdma_conn *c = arg;
	int rc;

	if (c->state >= ST_CLOSED)
		return;
	if (c->state == ST_TCP_CONNECTING) {
		int err = 0;
		socklen_t l = sizeof(err);
		getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
		if (err) {
			char d[300];
			snprintf(d, sizeof(d), "cannot connect to %s:%u: %s%s",
				 c->host, c->port, strerror(err),
				 err == ECONNREFUSED
					 ? " (is `srdma serve` running there?)"
					 : "");
			srdma__conn_fail(c,
					 err == ECONNREFUSED
						 ? SRDMA_ECONNREFUSED
						 : SRDMA_EUNREACHABLE,
					 d);
			return;
		}
		{
			/* Tickets are cached per server: resumption needs the
			 * same name, host and port. */
			char key[300];
			snprintf(key, sizeof(key), "%s:%u", c->host, c->port);
			rc = srdma__ctrl_create_client(
				c->ctx->tls, c->fd,
				c->ctx->cfg.peer_name ? c->ctx->cfg.peer_name
						      : c->host,
				key, &c->ctrl);
		}
		if (rc < 0) {
			srdma__conn_fail(c, rc, srdma_error_detail());
			return;
		}
		c->state = ST_TLS;
	}
	if (c->state == ST_TLS) {
		rc = srdma__ctrl_handshake(c->ctrl);
		if (rc == SRDMA_EAGAIN) {
			/* The ClientHello is out: use the wait. */
			if (srdma__prepare_early(c) < 0 ||
			    srdma__resolve_early(c) < 0) {
				srdma__conn_fail(c, SRDMA_EFABRIC,
						 srdma_error_detail());
				return;
			}
			srdma__update_interest(c);
			return;
		}
		if (rc < 0) {
			char d[400];
			snprintf(d, sizeof(d), "%s", srdma_error_detail());
			srdma__conn_fail(c, rc, d);
			return;
		}
		tls_done(c);
	}
	if (c->ctrl && (events & EPOLLOUT)) {
		rc = srdma__ctrl_flush(c->ctrl);
		if (rc < 0 && rc != SRDMA_EAGAIN) {
			srdma__conn_fail(c, SRDMA_ECLOSED,
					 "the control connection broke");
			return;
		}
	}
	if (c->state >= ST_HELLO)
		srdma__read_ctrl(c);
	srdma__update_interest(c);
}
