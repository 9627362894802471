/* SPDX-License-Identifier: MIT */
/*
 * verbs backend: the helpers its files share, opening and closing the
 * transport (devices, event channel, deferred-work eventfd), and the ops
 * table. The design notes are in verbs_int.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "transport/verbs/verbs_int.h"

/* ---- helpers ------------------------------------------------------ */

int srdma__verbs_set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return srdma__err(SRDMA_ESYS, "fcntl(O_NONBLOCK) on fd %d: %s",
				  fd, strerror(errno));
	return 0;
}

void srdma__verbs_fmt_addr(const struct sockaddr *sa, char *out, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (sa && sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const void *)sa;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
		port = ntohs(in->sin_port);
	} else if (sa && sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const void *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
		port = ntohs(in6->sin6_port);
	}
	snprintf(out, len, "%s:%u", host, port);
}

/* Where a device refuses memory and a locked-memory limit applies, the
 * limit is the likely cause: say so, with what to do. */
const char *srdma__verbs_memlock_hint(char *buf, size_t len)
{
	uint64_t lim;

	buf[0] = '\0';
	if (srdma__memlock_limited(&lim))
		snprintf(buf, len,
			 "; the locked-memory limit (RLIMIT_MEMLOCK) is %llu "
			 "KiB: raise it (`ulimit -l unlimited`, or "
			 "LimitMEMLOCK=infinity for a systemd service)",
			 (unsigned long long)(lim >> 10));
	return buf;
}

/* ---- ops: transport --------------------------------------------------- */

static void v_close(struct srdma__tp *tp);

static int v_open(struct srdma__tp *tp, const char *provider,
		  const char *device)
{
	struct vtp *v = calloc(1, sizeof(*v));
	int rc;

	ENSURE(v, SRDMA_ENOMEM, "out of memory opening verbs");
	v->tp = tp;
	v->evfd = -1;
	v->tfd = -1;
	tp->priv = v;
	/*
	 * Before any registration: on kernels that do not keep pinned pages
	 * across fork() by themselves, a child's copy-on-write would take
	 * registered pages away from the parent's DMA. A no-op where the
	 * kernel handles it (IBV_FORK_UNNEEDED, Linux 5.13 and later).
	 */
	rc = ibv_fork_init();
	if (rc)
		srdma__log(lg(v), SRDMA_LOG_INFO,
			   "verbs: ibv_fork_init: %s; do not fork() while "
			   "connections are open",
			   strerror(rc));
	if (device && device[0])
		snprintf(v->device, sizeof(v->device), "%s", device);
	rc = srdma__verbs_devs_open(v);
	if (rc < 0)
		goto out_close;
	v->ech = rdma_create_event_channel();
	if (!v->ech) {
		rc = srdma__err(SRDMA_ENODEV,
				"rdma_create_event_channel: %s (is rdma_ucm "
				"loaded?)",
				strerror(errno));
		goto out_close;
	}
	rc = srdma__verbs_set_nonblock(v->ech->fd);
	if (rc < 0)
		goto out_close;
	rc = srdma__loop_add(tp->loop, v->ech->fd, EPOLLIN,
			     srdma__verbs_cm_ready, NULL, v, &v->ech_reg);
	if (rc < 0)
		goto out_close;
	v->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (v->evfd < 0) {
		rc = srdma__err(SRDMA_ESYS, "eventfd: %s", strerror(errno));
		goto out_close;
	}
	rc = srdma__loop_add(tp->loop, v->evfd, EPOLLIN,
			     srdma__verbs_deferred_ready, NULL, v, &v->ev_reg);
	if (rc < 0)
		goto out_close;
	rc = srdma__verbs_timer_open(v);
	if (rc < 0)
		goto out_close;
	return 0;

out_close:
	v_close(tp);
	return rc;
}

static void v_close(struct srdma__tp *tp)
{
	struct vtp *v = tp ? tp->priv : NULL;

	if (!v)
		return;
	while (v->listeners)
		srdma__verbs_listener_destroy(v->listeners);
	while (v->conns) {
		struct srdma__tp_conn *c = v->conns;
		if (!c->destroyed)
			srdma__log(lg(v), SRDMA_LOG_WARN,
				   "verbs: closing with a live connection "
				   "to %s",
				   c->peer);
		srdma__verbs_conn_free(c);
	}
	srdma__verbs_timer_close(v);
	srdma__loop_del(v->ev_reg);
	srdma__loop_del(v->ech_reg);
	if (v->evfd >= 0)
		close(v->evfd);
	if (v->ech)
		rdma_destroy_event_channel(v->ech);
	srdma__verbs_devs_close(v);
	free(v);
	tp->priv = NULL;
}

const struct srdma__tp_ops srdma__verbs_ops = {
	.name = "verbs",
	.open = v_open,
	.close = v_close,
	.listen = srdma__verbs_listen,
	.listener_port = srdma__verbs_listener_port,
	.listener_destroy = srdma__verbs_listener_destroy,
	.accept = srdma__verbs_accept,
	.reject = srdma__verbs_reject,
	.conn_create = srdma__verbs_conn_create,
	.resolve = srdma__verbs_resolve,
	.local_qpn = srdma__verbs_local_qpn,
	.set_psn = srdma__verbs_set_psn,
	.connect = srdma__verbs_connect,
	.disconnect = srdma__verbs_disconnect,
	.conn_destroy = srdma__verbs_conn_destroy,
	.conn_info = srdma__verbs_conn_info,
	.conn_reset = srdma__verbs_conn_reset,
	.conn_set_cb = srdma__verbs_conn_set_cb,
	.conn_usable = srdma__verbs_conn_usable,
	.dev_for_addr = srdma__verbs_dev_for_addr,
	.pins_memory = true,
	.recv_before_accept = true,
	.mr_reg = srdma__verbs_mr_reg,
	.mr_dereg = srdma__verbs_mr_dereg,
	.post_recv = srdma__verbs_post_recv,
	.post_send = srdma__verbs_post_send,
	.post_write = srdma__verbs_post_write,
	.post_read = srdma__verbs_post_read,
};
