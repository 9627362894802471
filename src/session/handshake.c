/* SPDX-License-Identifier: MIT */
/*
 * Set-up messages: HELLO and PARAMS on both sides, and the data-path keys.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "session/conn.h"

int srdma__send_hello(struct srdma_conn *c)
{
	struct srdma__msg m = {.type = SRDMA_MSG_HELLO};

	m.u.hello.version = SRDMA_WIRE_VERSION;
	m.u.hello.caps = SRDMA_CAP_OFI | SRDMA_CAP_VERBS |
			 SRDMA_CAP_PROTECT_NONE | SRDMA_CAP_PROTECT_INTEGRITY |
			 SRDMA_CAP_PROTECT_ENCRYPT;
	m.u.hello.transport = (uint8_t)c->ctx->tp->kind;
	m.u.hello.protect = (uint8_t)c->protect;
	m.u.hello.cipher = (uint8_t)c->cipher;
	m.u.hello.max_msg = c->max_msg;
	m.u.hello.queue_depth = c->depth;
	if (c->server && c->listener)
		m.u.hello.fabric_port = c->listener->fabric_port;
	return srdma__conn_send_msg(c, &m);
}

int srdma__conn_install_keys(struct srdma_conn *c, struct srdma__keys *k)
{
	int rc;

	rc = srdma__aead_init(&c->tx, c->protect, c->cipher, true,
			      k->tx_msg_key, k->tx_msg_salt);
	if (rc == 0)
		rc = srdma__aead_init(&c->rx, c->protect, c->cipher, false,
				      k->rx_msg_key, k->rx_msg_salt);
	if (rc == 0)
		rc = srdma__aead_init(&c->blk_tx, c->protect, c->cipher, true,
				      k->tx_blk_key, k->tx_blk_salt);
	if (rc == 0)
		rc = srdma__aead_init(&c->blk_own, c->protect, c->cipher, false,
				      k->tx_blk_key, k->tx_blk_salt);
	if (rc == 0)
		rc = srdma__aead_init(&c->blk_rx, c->protect, c->cipher, false,
				      k->rx_blk_key, k->rx_blk_salt);
	/* The aead contexts hold their own copies now. */
	srdma__keys_wipe(k);
	return rc;
}

static int setup_keys(struct srdma_conn *c)
{
	GUARD(srdma__keys_derive(srdma__ctrl_ssl(c->ctrl), !c->server,
				 c->protect, c->cipher, &c->keys));
	return srdma__conn_install_keys(c, &c->keys);
}

static void fill_params_common(struct srdma_conn *c, struct srdma__msg *m)
{
	m->type = SRDMA_MSG_PARAMS;
	m->u.params.psn = c->local_psn;
	m->u.params.qpn = c->ctx->tp->ops->local_qpn(c->tc);
}

/* Client: our PARAMS carry nothing beyond the common fields. */
int srdma__send_client_params(struct srdma_conn *c)
{
	struct srdma__msg m = {0};

	fill_params_common(c, &m);
	return srdma__conn_send_msg(c, &m);
}

/* Client: fabric side ready (QPN known): register, post, send PARAMS.
 * The caller moves the state to PARAMS. */
int srdma__client_prepared(struct srdma_conn *c)
{
	srdma__phase(c, "fabric prepared");
	GUARD(srdma__setup_rings(c));
	GUARD(srdma__post_all_recvs(c));
	return srdma__send_client_params(c);
}

static bool transport_ok(uint8_t t)
{
	return t == SRDMA_TRANSPORT_VERBS || t == SRDMA_TRANSPORT_OFI;
}

int srdma__server_on_hello(struct srdma_conn *c,
			   const struct srdma__msg_hello *h,
			   enum conn_state *next)
{
	struct srdma_ctx *ctx = c->ctx;

	ENSURE(h->version == SRDMA_WIRE_VERSION, SRDMA_EVERSION,
	       "client speaks protocol version %u, we speak %u", h->version,
	       SRDMA_WIRE_VERSION);
	ENSURE(transport_ok(h->transport) && h->transport == ctx->tp->kind,
	       SRDMA_ENOTSUP,
	       "the client asked for transport %s but this server runs %s",
	       srdma_transport_name((enum srdma_transport)h->transport),
	       srdma_transport_name(ctx->tp->kind));
	ENSURE(h->protect >= ctx->cfg.protect, SRDMA_EPOLICY,
	       "the client asked for protection '%s' but this server "
	       "requires at least '%s'",
	       srdma_protect_name((enum srdma_protect)h->protect),
	       srdma_protect_name(ctx->cfg.protect));
	ENSURE(h->max_msg >= 64 && h->queue_depth >= 4, SRDMA_EPROTO,
	       "client HELLO has max_msg %u / queue depth %u", h->max_msg,
	       h->queue_depth);
	c->protect = (enum srdma_protect)h->protect;
	c->cipher = c->protect == SRDMA_PROTECT_NONE
			    ? SRDMA_CIPHER_NONE
			    : (h->cipher == SRDMA_CIPHER_CHACHA20_POLY1305
				       ? SRDMA_CIPHER_CHACHA20_POLY1305
				       : SRDMA_CIPHER_AES_256_GCM);
	if (h->max_msg < c->max_msg)
		c->max_msg = h->max_msg;
	if (h->queue_depth < c->depth)
		c->depth = h->queue_depth;
	GUARD(srdma__send_hello(c));
	GUARD(setup_keys(c));
	*next = ST_PARAMS;
	return 0;
}

int srdma__client_on_hello(struct srdma_conn *c,
			   const struct srdma__msg_hello *h,
			   enum conn_state *next)
{
	int rc;

	ENSURE(h->version == SRDMA_WIRE_VERSION, SRDMA_EVERSION,
	       "server speaks protocol version %u, we speak %u", h->version,
	       SRDMA_WIRE_VERSION);
	ENSURE(h->transport == c->ctx->tp->kind && h->protect == c->protect,
	       SRDMA_EPROTO, "server HELLO changed transport or mode");
	ENSURE(h->max_msg <= c->max_msg && h->queue_depth <= c->depth &&
		       h->max_msg >= 64 && h->queue_depth >= 4,
	       SRDMA_EPROTO, "server HELLO raised limits");
	c->cipher = (enum srdma__cipher)h->cipher;
	ENSURE((c->protect == SRDMA_PROTECT_NONE) ==
		       (c->cipher == SRDMA_CIPHER_NONE),
	       SRDMA_EPROTO, "server HELLO chose an inconsistent cipher");
	srdma__phase(c, "server HELLO");
	c->max_msg = h->max_msg;
	c->depth = h->queue_depth;
	c->fabric_port = h->fabric_port;
	ENSURE(c->fabric_port != 0, SRDMA_EPROTO,
	       "server HELLO names no fabric port");
	srdma__fport_remember(c);
	GUARD(setup_keys(c));
	if (c->params_early) {
		/* Nothing was sent on the fabric yet: the server's depth
		 * bounds what we may send. */
		c->tx_credits = c->depth;
		*next = ST_PARAMS;
		return 0;
	}
	if (c->early_resolve &&
	    (c->early_failed || c->early_port != c->fabric_port))
		srdma__drop_early(c);
	if (c->early_resolve && !c->early_ready) {
		*next = ST_PREPARE; /* on_tp_prepared follows */
		return 0;
	}
	if (!c->early_resolve) {
		GUARD(srdma__create_tp_conn(c));
		/* verbs resolves address and route asynchronously and learns
		 * its QPN only then; PARAMS (which carry the QPN) wait. */
		rc = c->ctx->tp->ops->resolve(
			c->tc, c->host, c->fabric_port,
			(int)c->ctx->cfg.handshake_timeout_ms);
		if (rc == SRDMA_EAGAIN) {
			*next = ST_PREPARE;
			return 0;
		}
		GUARD(rc);
	}
	GUARD(srdma__client_prepared(c));
	*next = ST_PARAMS;
	return 0;
}

int srdma__server_on_params(struct srdma_conn *c,
			    const struct srdma__msg_params *p,
			    enum conn_state *next)
{
	const struct srdma__tp_ops *ops = c->ctx->tp->ops;
	struct srdma__msg m = {0};
	uint32_t ttl;
	int rc;

	ENSURE(c->listener, SRDMA_ECLOSED, "the listener was closed");
	c->remote_psn = p->psn & 0xffffff;
	c->remote_qpn = p->qpn;
	/* The device this client's packets arrive on: the one that holds
	 * the address its control connection reached (hosts with several
	 * RDMA devices or ports serve each client on its own). */
	if (ops->dev_for_addr) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		bool known =
			getsockname(c->fd, (struct sockaddr *)&ss, &sl) == 0;

		rc = ops->dev_for_addr(c->ctx->tp,
				       known ? (struct sockaddr *)&ss : NULL);
		GUARD(rc);
		c->dev = rc;
		srdma__respool_add_dev(c->ctx, c->dev);
	}
	rc = srdma__respool_take(c);
	GUARD(rc);
	if (rc == 0)
		GUARD(srdma__create_tp_conn(c));
	GUARD(srdma__setup_rings(c));
	ops->set_psn(c->tc, c->local_psn, c->remote_psn);
	ttl = TOKEN_TTL_MS;
	GUARD(srdma__token_new(&c->token, srdma__now_ms(), ttl));
	c->session_id = c->token.session_id;
	fill_params_common(c, &m);
	m.u.params.session_id = c->session_id;
	memcpy(m.u.params.token, c->token.secret, sizeof(m.u.params.token));
	m.u.params.token_ttl_ms = ttl;
	m.u.params.fabric_port = c->listener->fabric_port;
	GUARD(srdma__conn_send_msg(c, &m));
	OPENSSL_cleanse(m.u.params.token, sizeof(m.u.params.token));
	*next = ST_FABRIC;
	return 0;
}

int srdma__client_on_params(struct srdma_conn *c,
			    const struct srdma__msg_params *p,
			    enum conn_state *next)
{
	const struct srdma__tp_ops *ops = c->ctx->tp->ops;
	struct srdma__connect_pdata pd = {0};
	uint8_t buf[SRDMA_WIRE_CONNECT_PDATA_LEN];
	int rc;

	ENSURE(p->session_id != 0, SRDMA_EPROTO,
	       "server PARAMS lack a session id");
	srdma__phase(c, "server PARAMS");
	c->session_id = p->session_id;
	c->remote_psn = p->psn & 0xffffff;
	ops->set_psn(c->tc, c->local_psn, c->remote_psn);
	if (c->params_early) {
		ENSURE(p->fabric_port != 0, SRDMA_EPROTO,
		       "server PARAMS name no fabric port");
		ops->set_port(c->tc, p->fabric_port);
	}
	pd.version = SRDMA_WIRE_VERSION;
	pd.session_id = p->session_id;
	pd.initiator_id = ops->local_qpn(c->tc);
	rc = srdma__token_mac(p->token, p->session_id, pd.initiator_id, pd.mac);
	if (rc == 0)
		rc = srdma__pdata_encode(&pd, buf);
	OPENSSL_cleanse(&pd, sizeof(pd));
	GUARD(rc);
	srdma__test_save_pdata(buf, sizeof(buf));
	GUARD(ops->connect(c->tc, buf, sizeof(buf)));
	*next = ST_FABRIC;
	return 0;
}

int srdma__conn_new_server(struct srdma_listener *l, int fd, const char *peer)
{
	struct srdma_ctx *ctx = l->ctx;
	struct srdma_conn *c = calloc(1, sizeof(*c));
	int rc;

	if (!c) {
		close(fd);
		return srdma__err(SRDMA_ENOMEM, "out of memory");
	}
	c->ctx = ctx;
	c->listener = l;
	srdma__conn_init_state(c, true);
	c->fd = fd;
	c->max_msg = ctx->cfg.max_msg;
	c->depth = ctx->cfg.queue_depth;
	c->deadline_ms = srdma__now_ms() + ctx->cfg.handshake_timeout_ms;
	c->t_start_ns = srdma__now_ns();
	snprintf(c->peer_addr, sizeof(c->peer_addr), "%s", peer);
	rc = srdma__random(&c->local_psn, sizeof(c->local_psn));
	c->local_psn &= 0xffffff;
	if (rc == 0)
		rc = srdma__ctrl_create(ctx->tls, fd, NULL, &c->ctrl);
	if (rc < 0) {
		close(fd);
		free(c);
		return rc;
	}
	rc = srdma__loop_add(ctx->loop, fd, EPOLLIN, srdma__on_ctrl_fd, NULL, c,
			     &c->fd_reg);
	if (rc < 0) {
		srdma__ctrl_destroy(c->ctrl);
		free(c);
		return rc;
	}
	c->counted_hs = true;
	ctx->handshakes++;
	ctx->nclients++;
	c->next = ctx->conns;
	if (ctx->conns)
		ctx->conns->prev = c;
	ctx->conns = c;
	return 0;
}
