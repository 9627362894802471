/* SPDX-License-Identifier: MIT */
/*
 * Starts an rdma_cm connection through libsrdma's verbs transport with a
 * traffic class (the path `srdma --tos` takes), toward an address where no
 * RDMA peer answers, so its connect requests leave the host and a capture
 * (roce_capture) can show their DSCP:
 *
 *   verbs_tos_probe HOST PORT TOS [SECONDS]
 *
 * Prints what happened; exits 0 once the request was sent and the wait is
 * over (nobody is expected to answer), 2 on error.
 */
#include <stdio.h>
#include <stdlib.h>

#include "base/loop.h"
#include "transport/transport.h"

static int prepared = -1;

static void on_prepared(void *arg, int status)
{
	(void)arg;
	prepared = status;
}

static void on_established(void *arg)
{
	(void)arg;
	printf("established (unexpected)\n");
}

static void on_closed(void *arg, int status, const char *detail)
{
	(void)arg;
	printf("closed: %d %s\n", status, detail ? detail : "");
}

static void on_cqe(void *arg, const struct srdma__tp_cqe *cqe)
{
	(void)arg;
	(void)cqe;
}

int main(int argc, char **argv)
{
	struct srdma__logger log = {.level = SRDMA_LOG_WARN};
	struct srdma__tp_conn_attr attr = {.sq_depth = 4, .rq_depth = 4};
	struct srdma__tp_conn_cb cb = {.on_prepared = on_prepared,
				       .on_established = on_established,
				       .on_closed = on_closed,
				       .on_cqe = on_cqe};
	struct srdma__tp_opts o = {0};
	struct srdma__loop *loop = NULL;
	struct srdma__tp *tp = NULL;
	struct srdma__tp_conn *c = NULL;
	uint8_t pdata[56] = {0};
	uint64_t end;
	int rc;

	if (argc < 4) {
		fprintf(stderr, "usage: %s HOST PORT TOS [SECONDS]\n", argv[0]);
		return 2;
	}
	o.tos = (uint8_t)strtoul(argv[3], NULL, 0);
	if (srdma__loop_create(&loop) < 0 ||
	    srdma__tp_open(SRDMA_TRANSPORT_VERBS, &o, loop, &log, &tp) < 0 ||
	    tp->ops->conn_create(tp, &attr, &cb, &c) < 0) {
		printf("error: %s\n", srdma_error_detail());
		return 2;
	}
	rc = tp->ops->resolve(c, argv[1], (uint16_t)atoi(argv[2]), 3000);
	end = srdma__now_ms() + 5000;
	while (rc == SRDMA_EAGAIN && prepared == -1 && srdma__now_ms() < end)
		if (srdma__loop_run_once(loop, 50) < 0)
			break;
	if ((rc != SRDMA_EAGAIN && rc != 0) || prepared != 0) {
		printf("error: resolving %s: %s\n", argv[1],
		       srdma_error_detail());
		return 2;
	}
	if (tp->ops->connect(c, pdata, sizeof(pdata)) < 0) {
		printf("error: %s\n", srdma_error_detail());
		return 2;
	}
	printf("connect request sent to %s with tos 0x%02x\n", argv[1], o.tos);
	fflush(stdout);
	end = srdma__now_ms() + (uint64_t)(argc > 4 ? atoi(argv[4]) : 2) * 1000;
	while (srdma__now_ms() < end)
		if (srdma__loop_run_once(loop, 50) < 0)
			break;
	tp->ops->conn_destroy(c);
	srdma__tp_close(tp);
	srdma__loop_destroy(loop);
	return 0;
}
