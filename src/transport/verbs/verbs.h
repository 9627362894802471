/* SPDX-License-Identifier: MIT */
/*
 * verbs backend introspection, for tests and logs only. The ops table and
 * srdma__verbs_available() are declared in transport/transport.h.
 */
#ifndef SRDMA_TRANSPORT_VERBS_VERBS_H
#define SRDMA_TRANSPORT_VERBS_VERBS_H

#include <stdbool.h>
#include <stdint.h>

#include "transport/transport.h"

/* True if the key handed out for mr is a type-2 memory window's. */
bool srdma__verbs_mr_uses_mw(const struct srdma__tp_mr *mr);
/* The underlying MR's own rkey (differs from mr->key when an MW is used). */
uint32_t srdma__verbs_mr_rkey(const struct srdma__tp_mr *mr);
/* Connections the instance still holds, zombies awaiting DISCONNECTED
 * included. */
int srdma__verbs_conn_count(const struct srdma__tp *tp);
/* The QP's traffic class and RNR timer as the device reports them (tests
 * and logs); <0 without a QP. */
int srdma__verbs_qp_query(const struct srdma__tp_conn *c, int *traffic_class,
			  int *min_rnr_timer);

/* Hardware behaviour a test build can imitate on a device (testhook.c). */
enum srdma__verbs_imitate_flags {
	SRDMA_VI_IWARP = 1,	/* transport type iWARP */
	SRDMA_VI_NO_QPN = 2,	/* connect requests carry no QPN (iWARP's) */
	SRDMA_VI_NO_MW = 4,	/* no type-2 memory windows */
	SRDMA_VI_BIND_FAIL = 8, /* every memory window bind fails */
};

#ifdef SRDMA_TEST_HOOKS
struct srdma__verbs_imitate {
	char device[64];   /* "" = every device */
	unsigned flags;	   /* enum srdma__verbs_imitate_flags */
	int max_qp_wr;	   /* > 0: the device's limit seems this */
	int max_cqe;	   /* > 0: likewise */
	int bind_delay_ms; /* > 0: binds are posted this much later */
};
/*
 * Imitates hardware for transports opened after the call (NULL: stop).
 * Test builds also read SRDMA_TEST_VERBS, e.g. "iwarp,no-qpn,no-mw,
 * bind-fail,max-qp-wr=32,max-cqe=64,bind-delay-ms=300,device=rxe0",
 * unless a test called this first.
 */
void srdma__verbs_test_imitate(const struct srdma__verbs_imitate *im);
#endif

#endif
