/* SPDX-License-Identifier: MIT */
/*
 * half_client: a legitimate client that stops half-way. It runs TLS,
 * HELLO and PARAMS against `srdma serve` (ofi), so the server holds a live
 * session waiting for its fabric connect, and then never connects: a test
 * can present that session a wrong, expired or foreign token with
 * ofi_stranger while the session is still open.
 *
 *   half_client HOST PORT CERTS_DIR OUT [--hold SECONDS]
 *     writes OUT.pdata (the 56-byte private data a real client would send),
 *     OUT.token (32 raw bytes) and OUT.sid (the session id in decimal),
 *     prints "ready sid=N ttl=MS", then holds the control connection until
 *     the server closes it or SECONDS pass (default 30), printing any ERROR
 *     the server sends ("server said: ...").
 *   half_client HOST PORT CERTS_DIR OUT --verbs-qpn N
 *     the same against a verbs server, announcing QPN N in PARAMS (and
 *     binding the MAC to it): a stranger that replays OUT.pdata from
 *     another QP must be refused by the QPN check, not the token.
 *   half_client HOST PORT CERTS_DIR OUT --error TEXT
 *     after HELLO, sends ERROR with TEXT (C escapes \n \r \t \e \xHH
 *     expanded: a hostile peer's text) and waits for the server to close.
 *   half_client --mix TOKEN_FILE SID OUT
 *     writes OUT: private data for session SID with a MAC keyed by the
 *     token in TOKEN_FILE (another session's, or random bytes).
 *
 * Exits 0 on success, 1 on failure (message on stderr).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/loop.h"
#include "ctrl/ctrl.h"
#include "protect/protect.h"
#include "wire/wire.h"

enum { IO_TIMEOUT_MS = 15000 };

struct hc {
	struct srdma__ctrl *ctrl;
	uint8_t in[SRDMA_WIRE_HDR_LEN + SRDMA_WIRE_MAX_BODY];
	size_t in_len;
};

static int die(const char *what)
{
	fprintf(stderr, "half_client: %s: %s\n", what, srdma_error_detail());
	return 1;
}

static int wait_fd(int fd, bool wr, int ms)
{
	struct pollfd p = {.fd = fd, .events = wr ? POLLOUT : POLLIN};

	return poll(&p, 1, ms) > 0 ? 0 : -1;
}

static int write_file(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");

	if (!f)
		return -1;
	if (fwrite(buf, 1, len, f) != len) {
		fclose(f);
		return -1;
	}
	return fclose(f);
}

static int send_msg(struct hc *h, const struct srdma__msg *m)
{
	uint8_t buf[SRDMA_WIRE_HDR_LEN + SRDMA_WIRE_MAX_BODY];
	int n = srdma__msg_encode(m, buf, sizeof(buf)), rc;

	if (n < 0)
		return n;
	rc = srdma__ctrl_send(h->ctrl, buf, (size_t)n);
	while (rc == SRDMA_EAGAIN) {
		if (wait_fd(srdma__ctrl_fd(h->ctrl), true, IO_TIMEOUT_MS) < 0)
			return SRDMA_ETIMEDOUT;
		rc = srdma__ctrl_flush(h->ctrl);
	}
	return rc < 0 ? rc : 0;
}

/* Reads one control message; ms < 0 waits IO_TIMEOUT_MS. */
static int recv_msg(struct hc *h, struct srdma__msg *m, int ms)
{
	for (;;) {
		if (h->in_len >= SRDMA_WIRE_HDR_LEN) {
			int fl = srdma__msg_frame_len(h->in, h->in_len);
			if (fl < 0)
				return fl;
			if (h->in_len >= (size_t)fl) {
				int rc =
					srdma__msg_decode(h->in, (size_t)fl, m);
				memmove(h->in, h->in + fl,
					h->in_len - (size_t)fl);
				h->in_len -= (size_t)fl;
				return rc;
			}
		}
		int n = srdma__ctrl_recv(h->ctrl, h->in + h->in_len,
					 sizeof(h->in) - h->in_len);
		if (n == SRDMA_EAGAIN) {
			if (wait_fd(srdma__ctrl_fd(h->ctrl), false,
				    ms < 0 ? IO_TIMEOUT_MS : ms) < 0)
				return SRDMA_ETIMEDOUT;
			continue;
		}
		if (n < 0)
			return n;
		h->in_len += (size_t)n;
	}
}

static int tcp_connect(const char *host, const char *port)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
	int fd;

	if (getaddrinfo(host, port, &hints, &ai))
		return -1;
	fd = socket(ai->ai_family, SOCK_STREAM, 0);
	if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	return fd;
}

static int mix(const char *token_file, const char *sid, const char *out)
{
	uint8_t token[SRDMA_WIRE_TOKEN_LEN], buf[SRDMA_WIRE_CONNECT_PDATA_LEN];
	struct srdma__connect_pdata pd = {.version = SRDMA_WIRE_VERSION};
	FILE *f = fopen(token_file, "rb");

	if (!f || fread(token, 1, sizeof(token), f) != sizeof(token)) {
		fprintf(stderr, "half_client: cannot read 32 bytes of %s\n",
			token_file);
		if (f)
			fclose(f);
		return 1;
	}
	fclose(f);
	pd.session_id = strtoull(sid, NULL, 10);
	if (srdma__token_mac(token, pd.session_id, 0, pd.mac) < 0 ||
	    srdma__pdata_encode(&pd, buf) < 0)
		return die("mac");
	if (write_file(out, buf, sizeof(buf)) < 0) {
		fprintf(stderr, "half_client: cannot write %s\n", out);
		return 1;
	}
	return 0;
}

/* Expands \n \r \t \e \\ and \xHH; NUL bytes are not allowed on the wire. */
static size_t unescape(char *dst, size_t cap, const char *src)
{
	size_t n = 0;

	while (*src && n + 1 < cap) {
		char ch = *src++;
		if (ch == '\\' && *src) {
			char e = *src++;
			ch = e == 'n'	? '\n'
			     : e == 'r' ? '\r'
			     : e == 't' ? '\t'
			     : e == 'e' ? 0x1b
					: e;
			if (e == 'x' && src[0] && src[1]) {
				char hex[3] = {src[0], src[1], 0};
				ch = (char)strtol(hex, NULL, 16);
				src += 2;
			}
		}
		if (ch)
			dst[n++] = ch;
	}
	dst[n] = 0;
	return n;
}

int main(int argc, char **argv)
{
	char cert[4096], key[4096], ca[4096], path[4096 + 16];
	struct srdma__tls_config tc = {0};
	struct srdma__tls_ctx *tls = NULL;
	struct srdma__connect_pdata pd = {.version = SRDMA_WIRE_VERSION};
	uint8_t pdbuf[SRDMA_WIRE_CONNECT_PDATA_LEN];
	struct srdma__msg m = {0};
	struct hc h = {0};
	int hold_s = 30, fd, rc;
	const char *error_text = NULL;
	uint32_t verbs_qpn = 0;
	uint64_t end;

	if (argc == 5 && !strcmp(argv[1], "--mix"))
		return mix(argv[2], argv[3], argv[4]);
	if (argc != 5 && !(argc == 7 && (!strcmp(argv[5], "--hold") ||
					 !strcmp(argv[5], "--error") ||
					 !strcmp(argv[5], "--verbs-qpn")))) {
		fprintf(stderr, "usage: half_client HOST PORT CERTS_DIR OUT "
				"[--hold S | --error TEXT] | --mix TOKEN_FILE "
				"SID OUT\n");
		return 2;
	}
	if (argc == 7 && !strcmp(argv[5], "--hold"))
		hold_s = atoi(argv[6]);
	else if (argc == 7 && !strcmp(argv[5], "--verbs-qpn"))
		verbs_qpn = (uint32_t)strtoul(argv[6], NULL, 0) & 0xffffff;
	else if (argc == 7)
		error_text = argv[6];
	if (srdma__certs_paths(argv[3], "client", cert, sizeof(cert), key,
			       sizeof(key), ca, sizeof(ca)) < 0)
		return die("certs");
	tc.cert_file = cert;
	tc.key_file = key;
	tc.ca_file = ca;
	if (srdma__tls_ctx_create(&tc, &tls) < 0)
		return die("tls");
	fd = tcp_connect(argv[1], argv[2]);
	if (fd < 0) {
		fprintf(stderr, "half_client: cannot connect: %s\n",
			strerror(errno));
		return 1;
	}
	if (srdma__ctrl_create(tls, fd, argv[1], &h.ctrl) < 0)
		return die("ctrl");
	while ((rc = srdma__ctrl_handshake(h.ctrl)) == SRDMA_EAGAIN)
		if (wait_fd(fd, srdma__ctrl_want_write(h.ctrl), IO_TIMEOUT_MS) <
		    0)
			return die("handshake timed out");
	if (rc < 0)
		return die("handshake");

	m.type = SRDMA_MSG_HELLO;
	m.u.hello.version = SRDMA_WIRE_VERSION;
	m.u.hello.caps =
		SRDMA_CAP_OFI | SRDMA_CAP_VERBS | SRDMA_CAP_PROTECT_ENCRYPT;
	m.u.hello.transport = verbs_qpn ? 1 : 2; /* verbs : ofi */
	m.u.hello.protect = 2;			 /* encrypt */
	m.u.hello.cipher = SRDMA_CIPHER_AES_256_GCM;
	m.u.hello.max_msg = 65536;
	m.u.hello.queue_depth = 16;
	if (send_msg(&h, &m) < 0)
		return die("send HELLO");
	if (recv_msg(&h, &m, -1) < 0 || m.type != SRDMA_MSG_HELLO) {
		fprintf(stderr, "half_client: no HELLO from the server (%s)\n",
			m.type == SRDMA_MSG_ERROR ? m.u.error.text
						  : srdma_error_detail());
		return 1;
	}
	if (error_text) {
		memset(&m, 0, sizeof(m));
		m.type = SRDMA_MSG_ERROR;
		m.u.error.code = SRDMA_EPROTO;
		m.u.error.text_len = (uint16_t)unescape(
			m.u.error.text, sizeof(m.u.error.text), error_text);
		if (send_msg(&h, &m) < 0)
			return die("send ERROR");
		/* The server fails the connection and closes it. */
		rc = recv_msg(&h, &m, IO_TIMEOUT_MS);
		printf("%s\n", rc < 0 ? "server closed the control connection"
				      : "server answered");
		srdma__ctrl_destroy(h.ctrl);
		srdma__tls_ctx_destroy(tls);
		return 0;
	}
	memset(&m, 0, sizeof(m));
	m.type = SRDMA_MSG_PARAMS;
	if (srdma__random(&m.u.params.psn, sizeof(m.u.params.psn)) < 0)
		return die("random");
	m.u.params.psn &= 0xffffff;
	m.u.params.qpn = verbs_qpn;
	if (send_msg(&h, &m) < 0)
		return die("send PARAMS");
	if (recv_msg(&h, &m, -1) < 0 || m.type != SRDMA_MSG_PARAMS)
		return die("no PARAMS from the server");

	pd.session_id = m.u.params.session_id;
	pd.initiator_id = verbs_qpn;
	if (srdma__token_mac(m.u.params.token, pd.session_id, verbs_qpn,
			     pd.mac) < 0 ||
	    srdma__pdata_encode(&pd, pdbuf) < 0)
		return die("mac");
	snprintf(path, sizeof(path), "%s.pdata", argv[4]);
	rc = write_file(path, pdbuf, sizeof(pdbuf));
	snprintf(path, sizeof(path), "%s.token", argv[4]);
	rc |= write_file(path, m.u.params.token, sizeof(m.u.params.token));
	snprintf(path, sizeof(path), "%s.sid", argv[4]);
	{
		char s[32];
		int n = snprintf(s, sizeof(s), "%llu\n",
				 (unsigned long long)pd.session_id);
		rc |= write_file(path, s, (size_t)n);
	}
	if (rc) {
		fprintf(stderr, "half_client: cannot write %s.*\n", argv[4]);
		return 1;
	}
	printf("ready sid=%llu ttl=%u\n", (unsigned long long)pd.session_id,
	       m.u.params.token_ttl_ms);
	fflush(stdout);

	/* Hold the session open; report what the server tells us. */
	end = srdma__now_ms() + (uint64_t)hold_s * 1000;
	while (srdma__now_ms() < end) {
		struct pollfd p = {.fd = fd, .events = POLLIN};

		if (poll(&p, 1, 200) < 0 && errno != EINTR)
			break;
		if (p.revents) {
			rc = recv_msg(&h, &m, 0);
			if (rc == SRDMA_ETIMEDOUT)
				continue;
			if (rc < 0) {
				printf("server closed the control "
				       "connection\n");
				break;
			}
			if (m.type == SRDMA_MSG_ERROR)
				printf("server said: %s\n", m.u.error.text);
			fflush(stdout);
		}
	}
	srdma__ctrl_destroy(h.ctrl);
	srdma__tls_ctx_destroy(tls);
	return 0;
}
