/* SPDX-License-Identifier: MIT */
/*
 * verbs backend: the helpers its files share, device choice, opening
 * and closing the transport (event channel, deferred-work eventfd),
 * the availability probe, and the ops table. The design notes are in
 * verbs_int.h.
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

/* ---- ops: transport --------------------------------------------------- */

int srdma__verbs_first_active(struct vtp *v, struct ibv_context **out)
{
	int i, p;

	for (i = 0; i < v->ndevs; i++) {
		struct ibv_device_attr da;
		if (!dev_matches(v, v->devs[i]) ||
		    ibv_query_device(v->devs[i], &da))
			continue;
		for (p = 1; p <= da.phys_port_cnt; p++) {
			struct ibv_port_attr pa;
			if (!ibv_query_port(v->devs[i], (uint8_t)p, &pa) &&
			    pa.state == IBV_PORT_ACTIVE) {
				*out = v->devs[i];
				return 0;
			}
		}
	}
	return srdma__err(SRDMA_ENODEV,
			  "no RDMA device%s%s with an ACTIVE "
			  "port",
			  v->device[0] ? " named " : "", v->device);
}

static void v_close(struct srdma__tp *tp);

static int v_open(struct srdma__tp *tp, const char *provider,
		  const char *device)
{
	struct vtp *v = calloc(1, sizeof(*v));
	int rc, i;

	ENSURE(v, SRDMA_ENOMEM, "out of memory opening verbs");
	v->tp = tp;
	v->evfd = -1;
	tp->priv = v;
	if (device && device[0])
		snprintf(v->device, sizeof(v->device), "%s", device);
	v->devs = rdma_get_devices(&v->ndevs);
	if (!v->devs || v->ndevs <= 0) {
		rc = srdma__err(SRDMA_ENODEV,
				"no RDMA device: load rdma_rxe and run `rdma "
				"link add rxe0 type rxe netdev eth0`, or use "
				"transport SRDMA_TRANSPORT_OFI");
		goto out_close;
	}
	if (v->device[0]) {
		for (i = 0; i < v->ndevs; i++)
			if (dev_matches(v, v->devs[i]))
				break;
		if (i == v->ndevs) {
			rc = srdma__err(SRDMA_ENODEV,
					"RDMA device %s not found (first "
					"present: %s); check `rdma link`",
					v->device, dev_name(v->devs[0]));
			goto out_close;
		}
	}
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
	srdma__loop_del(v->ev_reg);
	srdma__loop_del(v->ech_reg);
	if (v->evfd >= 0)
		close(v->evfd);
	if (v->ech)
		rdma_destroy_event_channel(v->ech);
	if (v->devs)
		rdma_free_devices(v->devs);
	free(v);
	tp->priv = NULL;
}

/* ---- availability ------------------------------------------------------- */

bool srdma__verbs_available(char *why, size_t len)
{
	struct ibv_device **list;
	char first[96] = "";
	bool found = false;
	int n = 0, i, p;

	list = ibv_get_device_list(&n);
	if (!list || n <= 0) {
		snprintf(why, len, "no RDMA devices found");
		if (list)
			ibv_free_device_list(list);
		return false;
	}
	for (i = 0; i < n && !found; i++) {
		struct ibv_context *ctx = ibv_open_device(list[i]);
		struct ibv_device_attr da;
		if (!ctx)
			continue;
		if (ibv_query_device(ctx, &da) == 0) {
			for (p = 1; p <= da.phys_port_cnt && !found; p++) {
				struct ibv_port_attr pa;
				if (ibv_query_port(ctx, (uint8_t)p, &pa))
					continue;
				if (pa.state == IBV_PORT_ACTIVE) {
					snprintf(why, len,
						 "found %s port %d ACTIVE",
						 ibv_get_device_name(list[i]),
						 p);
					found = true;
				} else if (!first[0]) {
					snprintf(first, sizeof(first),
						 "%s port %d is %s",
						 ibv_get_device_name(list[i]),
						 p,
						 ibv_port_state_str(pa.state));
				}
			}
		}
		ibv_close_device(ctx);
	}
	if (!found)
		snprintf(why, len, "%d RDMA device(s) but no ACTIVE port (%s)",
			 n, first[0] ? first : "none could be opened");
	ibv_free_device_list(list);
	return found;
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
	.pins_memory = true,
	.mr_reg = srdma__verbs_mr_reg,
	.mr_dereg = srdma__verbs_mr_dereg,
	.post_recv = srdma__verbs_post_recv,
	.post_send = srdma__verbs_post_send,
	.post_write = srdma__verbs_post_write,
	.post_read = srdma__verbs_post_read,
};
