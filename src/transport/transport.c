/* SPDX-License-Identifier: MIT */
/*
 * Picks and opens a transport backend. AUTO is decided twice: when the
 * context is made (any usable RDMA device with an active port: verbs), and
 * again, for good, by the first address the context listens on or connects
 * to (srdma__tp_settle): verbs only where that address is reached through a
 * device that can carry reliable connections.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "transport/transport.h"

static const char *prov_name(const struct srdma__tp_opts *o)
{
	return o->provider && o->provider[0] ? o->provider : "tcp";
}

static int open_kind(enum srdma_transport want, enum srdma_transport kind,
		     const struct srdma__tp_opts *o, struct srdma__loop *loop,
		     const struct srdma__logger *log, const char *why,
		     struct srdma__tp **out)
{
	struct srdma__tp *tp;
	int rc;

	tp = calloc(1, sizeof(*tp));
	ENSURE(tp, SRDMA_ENOMEM, "out of memory opening the transport");
	tp->loop = loop;
	tp->log = log;
	tp->want = want;
	tp->kind = kind;
	tp->opts = *o;
	snprintf(tp->why, sizeof(tp->why), "%s", why);
	tp->ops = kind == SRDMA_TRANSPORT_VERBS ? &srdma__verbs_ops
						: &srdma__ofi_ops;
	rc = tp->ops->open(tp, o->provider, o->device);
	if (rc < 0) {
		free(tp);
		return rc;
	}
	*out = tp;
	return 0;
}

int srdma__tp_open(enum srdma_transport want, const struct srdma__tp_opts *o,
		   struct srdma__loop *loop, const struct srdma__logger *log,
		   struct srdma__tp **out)
{
	static const struct srdma__tp_opts none;
	char vwhy[320] = "", why[384];
	enum srdma_transport kind;

	if (!o)
		o = &none;
	switch (want) {
	case SRDMA_TRANSPORT_AUTO:
		if (srdma__verbs_available(vwhy, sizeof(vwhy))) {
			kind = SRDMA_TRANSPORT_VERBS;
			snprintf(why, sizeof(why), "auto chose verbs: %s",
				 vwhy);
		} else {
			kind = SRDMA_TRANSPORT_OFI;
			snprintf(why, sizeof(why),
				 "auto chose ofi (libfabric %s): %s",
				 prov_name(o), vwhy);
		}
		break;
	case SRDMA_TRANSPORT_VERBS:
		kind = SRDMA_TRANSPORT_VERBS;
		snprintf(why, sizeof(why), "verbs asked for");
		break;
	case SRDMA_TRANSPORT_OFI:
		kind = SRDMA_TRANSPORT_OFI;
		snprintf(why, sizeof(why), "ofi (libfabric %s) asked for",
			 prov_name(o));
		break;
	default:
		return srdma__err(SRDMA_EINVAL, "unknown transport %d",
				  (int)want);
	}
	return open_kind(want, kind, o, loop, log, why, out);
}

int srdma__tp_settle(struct srdma__tp **tpp, const char *host, bool passive)
{
	struct srdma__tp *tp = *tpp, *nt = NULL;
	char vwhy[320] = "", why[384];
	enum srdma_transport kind;

	if (!tp || tp->want != SRDMA_TRANSPORT_AUTO || tp->settled)
		return 0;
	if (srdma__verbs_reaches(host, passive, vwhy, sizeof(vwhy))) {
		kind = SRDMA_TRANSPORT_VERBS;
		snprintf(why, sizeof(why), "auto chose verbs: %s", vwhy);
	} else {
		kind = SRDMA_TRANSPORT_OFI;
		snprintf(why, sizeof(why), "auto chose ofi (libfabric %s): %s",
			 prov_name(&tp->opts), vwhy);
	}
	if (kind == tp->kind) {
		snprintf(tp->why, sizeof(tp->why), "%s", why);
		tp->settled = true;
		return 0;
	}
	GUARD(open_kind(tp->want, kind, &tp->opts, tp->loop, tp->log, why,
			&nt));
	nt->settled = true;
	srdma__tp_close(tp);
	*tpp = nt;
	return 0;
}

void srdma__tp_close(struct srdma__tp *tp)
{
	if (!tp)
		return;
	tp->ops->close(tp);
	free(tp);
}

/* CAP_IPC_LOCK in the effective set (/proc/self/status, CapEff bit 14):
 * the kernel then does not count registrations against RLIMIT_MEMLOCK. */
static bool have_ipc_lock(void)
{
	char line[256];
	unsigned long long caps = 0;
	bool found = false;
	FILE *f = fopen("/proc/self/status", "re");

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "CapEff: %llx", &caps) == 1) {
			found = true;
			break;
		}
	fclose(f);
	return found && (caps >> 14 & 1);
}

bool srdma__memlock_limited(uint64_t *bytes)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_MEMLOCK, &rl) < 0 || rl.rlim_cur == RLIM_INFINITY)
		return false;
	if (have_ipc_lock())
		return false;
	*bytes = (uint64_t)rl.rlim_cur;
	return true;
}
