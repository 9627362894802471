/* SPDX-License-Identifier: MIT */
/* Picks and opens a transport backend. */
#include <stdio.h>
#include <stdlib.h>

#include "transport/transport.h"

int srdma__tp_open(enum srdma_transport want, const char *provider,
		   const char *device, struct srdma__loop *loop,
		   const struct srdma__logger *log, struct srdma__tp **out)
{
	char vwhy[160] = "";
	struct srdma__tp *tp;
	int rc;

	tp = calloc(1, sizeof(*tp));
	ENSURE(tp, SRDMA_ENOMEM, "out of memory opening the transport");
	tp->loop = loop;
	tp->log = log;
	switch (want) {
	case SRDMA_TRANSPORT_AUTO:
		if (srdma__verbs_available(vwhy, sizeof(vwhy))) {
			tp->kind = SRDMA_TRANSPORT_VERBS;
			snprintf(tp->why, sizeof(tp->why),
				 "auto chose verbs: %s", vwhy);
		} else {
			tp->kind = SRDMA_TRANSPORT_OFI;
			snprintf(tp->why, sizeof(tp->why),
				 "auto chose ofi (libfabric %s): %s",
				 provider ? provider : "tcp", vwhy);
		}
		break;
	case SRDMA_TRANSPORT_VERBS:
		tp->kind = SRDMA_TRANSPORT_VERBS;
		snprintf(tp->why, sizeof(tp->why), "verbs asked for");
		break;
	case SRDMA_TRANSPORT_OFI:
		tp->kind = SRDMA_TRANSPORT_OFI;
		snprintf(tp->why, sizeof(tp->why),
			 "ofi (libfabric %s) asked for",
			 provider ? provider : "tcp");
		break;
	default:
		free(tp);
		return srdma__err(SRDMA_EINVAL, "unknown transport %d",
				  (int)want);
	}
	tp->ops = tp->kind == SRDMA_TRANSPORT_VERBS ? &srdma__verbs_ops
						    : &srdma__ofi_ops;
	rc = tp->ops->open(tp, provider, device);
	if (rc < 0) {
		free(tp);
		return rc;
	}
	*out = tp;
	return 0;
}

void srdma__tp_close(struct srdma__tp *tp)
{
	if (!tp)
		return;
	tp->ops->close(tp);
	free(tp);
}
