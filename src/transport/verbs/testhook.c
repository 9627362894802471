/* SPDX-License-Identifier: MIT */
/*
 * verbs backend: imitated hardware, for tests of what Soft-RoCE cannot
 * show (an iWARP device, a connect request without QPN, no type-2 memory
 * windows, small device limits, a bind that is late or fails). Only a test
 * build (-DSRDMA_TEST_HOOKS=ON) has any of it; elsewhere verbs_int.h makes
 * these calls nothing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "transport/verbs/verbs_int.h"

#ifdef SRDMA_TEST_HOOKS
static struct srdma__verbs_imitate im;
static bool im_on, im_decided;

void srdma__verbs_test_imitate(const struct srdma__verbs_imitate *x)
{
	im_decided = true; /* a test's word beats the environment */
	im_on = x != NULL;
	memset(&im, 0, sizeof(im));
	if (x)
		im = *x;
}

/* SRDMA_TEST_VERBS="iwarp,no-qpn,no-mw,bind-fail,max-qp-wr=N,max-cqe=N,
 * bind-delay-ms=N,device=NAME" */
static void from_env(void)
{
	const char *e;
	char buf[256], *tok, *save = NULL;

	if (im_decided)
		return;
	im_decided = true;
	e = secure_getenv("SRDMA_TEST_VERBS");
	if (!e || !e[0])
		return;
	snprintf(buf, sizeof(buf), "%s", e);
	for (tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		if (!strcmp(tok, "iwarp"))
			im.flags |= SRDMA_VI_IWARP;
		else if (!strcmp(tok, "no-qpn"))
			im.flags |= SRDMA_VI_NO_QPN;
		else if (!strcmp(tok, "no-mw"))
			im.flags |= SRDMA_VI_NO_MW;
		else if (!strcmp(tok, "bind-fail"))
			im.flags |= SRDMA_VI_BIND_FAIL;
		else if (!strncmp(tok, "max-qp-wr=", 10))
			im.max_qp_wr = atoi(tok + 10);
		else if (!strncmp(tok, "max-cqe=", 8))
			im.max_cqe = atoi(tok + 8);
		else if (!strncmp(tok, "bind-delay-ms=", 14))
			im.bind_delay_ms = atoi(tok + 14);
		else if (!strncmp(tok, "device=", 7))
			snprintf(im.device, sizeof(im.device), "%s", tok + 7);
	}
	im_on = true;
}

static bool applies(const char *name)
{
	from_env();
	return im_on && (!im.device[0] || !strcmp(im.device, name));
}

void srdma__verbs_imitate_attr(const char *name, unsigned *flags,
			       struct ibv_device_attr *da)
{
	if (!applies(name))
		return;
	*flags = im.flags;
	if (im.max_qp_wr > 0)
		da->max_qp_wr = im.max_qp_wr;
	if (im.max_cqe > 0)
		da->max_cqe = im.max_cqe;
}

void srdma__verbs_imitate_dev(struct vdev *d)
{
	srdma__verbs_imitate_attr(d->name, &d->imitate, &d->da);
	if (applies(d->name)) {
		d->bind_delay_ms = im.bind_delay_ms;
		srdma__log(lg(d->v), SRDMA_LOG_INFO,
			   "verbs: test build imitates on %s: flags 0x%x, "
			   "max_qp_wr %d, max_cqe %d, bind delay %d ms",
			   d->name, d->imitate, d->da.max_qp_wr, d->da.max_cqe,
			   d->bind_delay_ms);
	}
}

/* Delayed binds: when the timer fires, post what is due. */
static void timer_ready(void *arg, uint32_t events)
{
	struct vtp *v = arg;
	struct srdma__tp_conn *c;
	uint64_t n;

	if (read(v->tfd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return;
again:
	for (c = v->conns; c; c = c->next) {
		int rc;
		if (c->destroyed || !c->qp_rts || c->state >= VS_DRAINING)
			continue;
		for (struct vmr *m = c->mrs; m; m = m->next)
			if (m->mw && !m->bound)
				goto post;
		continue;
	post:
		srdma__verbs_hold(c);
		rc = srdma__verbs_bind_pending(c);
		if (rc < 0) {
			char d[192];
			srdma__err_copy(d, sizeof(d));
			srdma__verbs_begin_close(c, rc, d);
		}
		srdma__verbs_release(c);
		goto again;
	}
}

int srdma__verbs_timer_open(struct vtp *v)
{
	v->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	ENSURE(v->tfd >= 0, SRDMA_ESYS, "timerfd_create: %s", strerror(errno));
	return srdma__loop_add(v->tp->loop, v->tfd, EPOLLIN, timer_ready, NULL,
			       v, &v->tfd_reg);
}

void srdma__verbs_timer_close(struct vtp *v)
{
	srdma__loop_del(v->tfd_reg);
	v->tfd_reg = NULL;
	if (v->tfd >= 0)
		close(v->tfd);
	v->tfd = -1;
}

void srdma__verbs_timer_arm(struct vtp *v, int ms)
{
	struct itimerspec it = {0};

	if (v->tfd < 0 || ms <= 0)
		return;
	it.it_value.tv_sec = ms / 1000;
	it.it_value.tv_nsec = (long)(ms % 1000) * 1000000L;
	if (timerfd_settime(v->tfd, 0, &it, NULL) < 0)
		srdma__log(lg(v), SRDMA_LOG_WARN, "verbs: timerfd_settime: %s",
			   strerror(errno));
}
#endif
