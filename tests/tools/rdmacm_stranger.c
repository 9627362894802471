/* SPDX-License-Identifier: MIT */
/*
 * A stranger that speaks plain rdma_cm to a server's fabric port, with
 * chosen private data, to show it is rejected (DESIGN.md §3 step 3):
 *
 *   rdmacm_stranger HOST PORT [--zero|--none|--pdata HEX|--replay FILE]
 *
 * --zero (default): 56 zero bytes; --none: no private data; --pdata HEX:
 * these bytes; --replay FILE: the file's bytes (at most 56), e.g. private
 * data captured from a real client. Prints "accepted", "rejected" or
 * "error: ..."; exits 0 if rejected, 1 if accepted, 2 on error.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rdma/rdma_cma.h>

enum { PDATA_MAX = 56, TIMEOUT_MS = 15000 };

static int fail(const char *what, int err)
{
	printf("error: %s: %s\n", what, strerror(err));
	return 2;
}

static int hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

static int parse_hex(const char *s, uint8_t *out, size_t *len)
{
	size_t n = 0;

	while (s[0] && s[1]) {
		int hi = hexval(s[0]), lo = hexval(s[1]);
		if (hi < 0 || lo < 0 || n == PDATA_MAX)
			return -1;
		out[n++] = (uint8_t)(hi << 4 | lo);
		s += 2;
	}
	if (s[0])
		return -1;
	*len = n;
	return 0;
}

/* Waits for the next event on ch; copies type and status, acks it. */
static int next_event(struct rdma_event_channel *ch,
		      enum rdma_cm_event_type *type, int *status)
{
	struct pollfd pfd = {.fd = ch->fd, .events = POLLIN};
	struct rdma_cm_event *ev;
	int rc;

	do {
		rc = poll(&pfd, 1, TIMEOUT_MS);
	} while (rc < 0 && errno == EINTR);
	if (rc == 0)
		return ETIMEDOUT;
	if (rc < 0 || rdma_get_cm_event(ch, &ev))
		return errno;
	*type = ev->event;
	*status = ev->status;
	rdma_ack_cm_event(ev);
	return 0;
}

static int expect(struct rdma_event_channel *ch, enum rdma_cm_event_type want,
		  const char *what)
{
	enum rdma_cm_event_type t;
	int st, rc = next_event(ch, &t, &st);

	if (rc)
		return fail(what, rc);
	if (t != want) {
		printf("error: %s: got %s (status %d)\n", what,
		       rdma_event_str(t), st);
		return 2;
	}
	return 0;
}

int main(int argc, char **argv)
{
	uint8_t pdata[PDATA_MAX] = {0};
	size_t plen = PDATA_MAX;
	struct rdma_event_channel *ch;
	struct rdma_cm_id *id;
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
	struct ibv_qp_init_attr qa = {0};
	struct rdma_conn_param cp = {0};
	enum rdma_cm_event_type t;
	int st, rc, ret;

	if (argc < 3) {
		fprintf(stderr,
			"usage: %s HOST PORT [--zero|--none|--pdata "
			"HEX|--replay FILE]\n",
			argv[0]);
		return 2;
	}
	if (argc > 3 && !strcmp(argv[3], "--none")) {
		plen = 0;
	} else if (argc > 4 && !strcmp(argv[3], "--pdata")) {
		if (parse_hex(argv[4], pdata, &plen)) {
			printf("error: --pdata wants at most %d bytes of hex\n",
			       PDATA_MAX);
			return 2;
		}
	} else if (argc > 4 && !strcmp(argv[3], "--replay")) {
		FILE *f = fopen(argv[4], "rb");
		if (!f)
			return fail(argv[4], errno);
		plen = fread(pdata, 1, PDATA_MAX, f);
		fclose(f);
	} else if (argc > 3 && strcmp(argv[3], "--zero")) {
		printf("error: unknown option %s\n", argv[3]);
		return 2;
	}

	rc = getaddrinfo(argv[1], argv[2], &hints, &ai);
	if (rc) {
		printf("error: %s: %s\n", argv[1], gai_strerror(rc));
		return 2;
	}
	ch = rdma_create_event_channel();
	if (!ch)
		return fail("rdma_create_event_channel", errno);
	if (rdma_create_id(ch, &id, NULL, RDMA_PS_TCP))
		return fail("rdma_create_id", errno);
	if (rdma_resolve_addr(id, NULL, ai->ai_addr, 5000))
		return fail("rdma_resolve_addr", errno);
	freeaddrinfo(ai);
	ret = expect(ch, RDMA_CM_EVENT_ADDR_RESOLVED, "resolve address");
	if (ret)
		return ret;
	if (rdma_resolve_route(id, 5000))
		return fail("rdma_resolve_route", errno);
	ret = expect(ch, RDMA_CM_EVENT_ROUTE_RESOLVED, "resolve route");
	if (ret)
		return ret;
	qa.qp_type = IBV_QPT_RC;
	qa.cap.max_send_wr = qa.cap.max_recv_wr = 4;
	qa.cap.max_send_sge = qa.cap.max_recv_sge = 1;
	if (rdma_create_qp(id, NULL, &qa))
		return fail("rdma_create_qp", errno);
	cp.private_data = plen ? pdata : NULL;
	cp.private_data_len = (uint8_t)plen;
	cp.responder_resources = 1;
	cp.initiator_depth = 1;
	cp.retry_count = 7;
	cp.rnr_retry_count = 7;
	if (rdma_connect(id, &cp))
		return fail("rdma_connect", errno);
	rc = next_event(ch, &t, &st);
	if (rc)
		return fail("connect", rc);
	if (t == RDMA_CM_EVENT_REJECTED) {
		printf("rejected\n");
		ret = 0;
	} else if (t == RDMA_CM_EVENT_ESTABLISHED) {
		printf("accepted\n");
		rdma_disconnect(id);
		next_event(ch, &t, &st); /* DISCONNECTED, best effort */
		ret = 1;
	} else {
		printf("error: connect: got %s (status %d)\n",
		       rdma_event_str(t), st);
		ret = 2;
	}
	rdma_destroy_qp(id);
	rdma_destroy_id(id);
	rdma_destroy_event_channel(ch);
	return ret;
}
