/* SPDX-License-Identifier: MIT */
/*
 * The provider itself: fi_prov_ini, its parameters (fi_param: FI_SRDMA_*),
 * logging, and fi_getinfo. Only FI_EP_MSG is offered; ofi_rxm layers
 * FI_EP_RDM and FI_TAGGED on it (`fi_info -p srdma` lists srdma;ofi_rxm).
 */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "prov.h"

#define SP_CAPS                                                                \
	(FI_MSG | FI_RMA | FI_SEND | FI_RECV | FI_READ | FI_WRITE |            \
	 FI_REMOTE_READ | FI_REMOTE_WRITE | FI_LOCAL_COMM | FI_REMOTE_COMM)
#define SP_ORDER                                                               \
	(FI_ORDER_SAS | FI_ORDER_SAW | FI_ORDER_SAR | FI_ORDER_WAS |           \
	 FI_ORDER_WAW | FI_ORDER_WAR | FI_ORDER_RAS | FI_ORDER_RAW |           \
	 FI_ORDER_RAR)

int sp_log_level = SRDMA_LOG_WARN;

static void sp_cleanup(void)
{
}

static int sp_getinfo(uint32_t version, const char *node, const char *service,
		      uint64_t flags, const struct fi_info *hints,
		      struct fi_info **info);

struct fi_provider sp_prov = {
	.name = SP_NAME,
	.version = FI_VERSION(SRDMA_VERSION_MAJOR * 100 + SRDMA_VERSION_MINOR,
			      SRDMA_VERSION_PATCH),
	.fi_version = FI_VERSION(FI_MAJOR_VERSION, FI_MINOR_VERSION),
	.getinfo = sp_getinfo,
	.fabric = sp_fabric_open,
	.cleanup = sp_cleanup,
};

/* ---- logging ------------------------------------------------------------ */

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void sp_log(int level, const char *fmt, ...)
{
	static const enum fi_log_level fi_level[] = {FI_LOG_WARN, FI_LOG_WARN,
						     FI_LOG_INFO, FI_LOG_DEBUG};
	char line[1024];
	va_list ap;

	if (level < SRDMA_LOG_ERROR || level > SRDMA_LOG_DEBUG)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (fi_log_enabled(&sp_prov, fi_level[level], FI_LOG_CORE)) {
		fi_log(&sp_prov, fi_level[level], FI_LOG_CORE, __func__,
		       __LINE__, "%s\n", line);
		return;
	}
	if (level <= sp_log_level)
		fprintf(stderr, "libfabric:%d:srdma:%s: %s\n", (int)getpid(),
			level_names[level], line);
}

/* ---- parameters --------------------------------------------------------- */

static void define_params(void)
{
	fi_param_define(
		&sp_prov, "certs", FI_PARAM_STRING,
		"Directory written by `srdma certs`: a passive endpoint "
		"presents server.crt, a connecting one client.crt, both "
		"trust ca.crt (default ./pki)");
	fi_param_define(&sp_prov, "cert", FI_PARAM_STRING,
			"PEM certificate (with FI_SRDMA_KEY and FI_SRDMA_CA, "
			"instead of FI_SRDMA_CERTS; used for both roles)");
	fi_param_define(&sp_prov, "key", FI_PARAM_STRING,
			"PEM private key for FI_SRDMA_CERT");
	fi_param_define(&sp_prov, "ca", FI_PARAM_STRING,
			"PEM CA certificates every peer must be issued by");
	fi_param_define(&sp_prov, "peer_name", FI_PARAM_STRING,
			"Name every accepting peer's certificate must carry "
			"(default: the address connected to)");
	fi_param_define(&sp_prov, "identity", FI_PARAM_STRING,
			"Identity in FI_SRDMA_CERTS a connecting endpoint "
			"presents (default client: client.crt, client.key)");
	fi_param_define(&sp_prov, "allow", FI_PARAM_STRING,
			"Comma-separated identities (certificate CN or SAN) a "
			"passive endpoint accepts (default: any certificate "
			"the CA issued)");
	fi_param_define(&sp_prov, "protect", FI_PARAM_STRING,
			"Payload protection: encrypt (default), integrity or "
			"none; a passive endpoint accepts nothing weaker");
	fi_param_define(&sp_prov, "transport", FI_PARAM_STRING,
			"Transport underneath: ofi (libfabric tcp, default) or "
			"verbs (rdma_cm + ibverbs)");
	fi_param_define(&sp_prov, "ofi_provider", FI_PARAM_STRING,
			"libfabric provider libsrdma's ofi transport runs on "
			"(default tcp)");
	fi_param_define(&sp_prov, "iface", FI_PARAM_STRING,
			"Interface whose IPv4 address endpoints listen on "
			"(default: the first up, non-loopback one, else lo)");
	fi_param_define(&sp_prov, "max_msg", FI_PARAM_SIZE_T,
			"Bytes per protected record (default 65536)");
	fi_param_define(&sp_prov, "queue_depth", FI_PARAM_SIZE_T,
			"Records in flight each way per connection (default "
			"32)");
	fi_param_define(&sp_prov, "log", FI_PARAM_STRING,
			"What the provider writes to stderr when FI_LOG_LEVEL "
			"does not route it to libfabric's log: none, error, "
			"warn (default), info (one line per connection: TLS "
			"version and suite, payload AEAD, peer), debug");
}

static char *param_str(const char *name)
{
	char *v = NULL;

	if (fi_param_get_str(&sp_prov, name, &v) == 0 && v && *v)
		return strdup(v);
	return NULL;
}

static int parse_level(const char *s)
{
	if (!s)
		return SRDMA_LOG_WARN;
	if (!strcasecmp(s, "none"))
		return -1;
	for (int i = 0; i < 4; i++)
		if (!strcasecmp(s, level_names[i]))
			return i;
	return SRDMA_LOG_WARN;
}

void sp_conf_free(struct sp_conf *c)
{
	free(c->certs);
	free(c->cert);
	free(c->key);
	free(c->ca);
	free(c->peer_name);
	free(c->allow);
	free(c->identity);
	free(c->iface);
	free(c->ofi_provider);
	memset(c, 0, sizeof(*c));
}

int sp_conf_load(struct sp_conf *c)
{
	char *protect = param_str("protect"),
	     *transport = param_str("transport");
	char *log = param_str("log");
	size_t v;
	int rc = 0;

	memset(c, 0, sizeof(*c));
	c->certs = param_str("certs");
	c->cert = param_str("cert");
	c->key = param_str("key");
	c->ca = param_str("ca");
	c->peer_name = param_str("peer_name");
	c->allow = param_str("allow");
	c->identity = param_str("identity");
	c->iface = param_str("iface");
	c->ofi_provider = param_str("ofi_provider");
	c->protect = SRDMA_PROTECT_ENCRYPT;
	if (protect && !strcasecmp(protect, "integrity")) {
		c->protect = SRDMA_PROTECT_INTEGRITY;
	} else if (protect && !strcasecmp(protect, "none")) {
		c->protect = SRDMA_PROTECT_NONE;
	} else if (protect && strcasecmp(protect, "encrypt")) {
		sp_log(SRDMA_LOG_ERROR,
		       "FI_SRDMA_PROTECT=%s: expected encrypt, integrity or "
		       "none",
		       protect);
		rc = -FI_EINVAL;
	}
	c->transport = SRDMA_TRANSPORT_OFI;
	if (transport && !strcasecmp(transport, "verbs")) {
		c->transport = SRDMA_TRANSPORT_VERBS;
	} else if (transport && strcasecmp(transport, "ofi")) {
		sp_log(SRDMA_LOG_ERROR,
		       "FI_SRDMA_TRANSPORT=%s: expected ofi or verbs",
		       transport);
		rc = -FI_EINVAL;
	}
	c->max_msg = 65536;
	if (fi_param_get_size_t(&sp_prov, "max_msg", &v) == 0 && v)
		c->max_msg = v > (16u << 20) ? 16u << 20 : (uint32_t)v;
	c->queue_depth = 32;
	if (fi_param_get_size_t(&sp_prov, "queue_depth", &v) == 0 && v)
		c->queue_depth = v > 4096 ? 4096 : (uint32_t)v;
	c->log_level = parse_level(log);
	if (!c->certs && !c->cert)
		c->certs = strdup("./pki");
	free(protect);
	free(transport);
	free(log);
	if (rc)
		sp_conf_free(c);
	return rc;
}

/* ---- addresses ---------------------------------------------------------- */

/* Our own address: FI_SRDMA_IFACE's IPv4 address, else the first up,
 * non-loopback interface's, else 127.0.0.1 (as tcp's FI_TCP_IFACE). */
static void default_src(const char *iface, struct sockaddr_in *sin)
{
	struct ifaddrs *ifs, *i;
	bool found = false;

	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (getifaddrs(&ifs) != 0)
		return;
	for (i = ifs; i && !found; i = i->ifa_next) {
		if (!i->ifa_addr || i->ifa_addr->sa_family != AF_INET ||
		    !(i->ifa_flags & IFF_UP))
			continue;
		if (iface ? strcmp(iface, i->ifa_name) != 0
			  : (i->ifa_flags & IFF_LOOPBACK) != 0)
			continue;
		sin->sin_addr = ((struct sockaddr_in *)i->ifa_addr)->sin_addr;
		found = true;
	}
	freeifaddrs(ifs);
	if (iface && !found)
		sp_log(SRDMA_LOG_WARN,
		       "FI_SRDMA_IFACE=%s has no IPv4 address; using "
		       "127.0.0.1",
		       iface);
}

static int resolve(const char *node, const char *service, bool passive,
		   struct sockaddr_storage *ss, size_t *len)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
	int rc;

	hints.ai_flags = passive ? AI_PASSIVE : 0;
	rc = getaddrinfo(node, service, &hints, &ai);
	if (rc) {
		sp_log(SRDMA_LOG_DEBUG, "getaddrinfo(%s, %s): %s",
		       node ? node : "-", service ? service : "-",
		       gai_strerror(rc));
		return -FI_ENODATA;
	}
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	*len = ai->ai_addrlen;
	freeaddrinfo(ai);
	return 0;
}

static uint32_t addr_format_of(size_t len)
{
	return len == sizeof(struct sockaddr_in6) ? FI_SOCKADDR_IN6
						  : FI_SOCKADDR_IN;
}

static bool format_ok(uint32_t f)
{
	return f == FI_FORMAT_UNSPEC || f == FI_SOCKADDR ||
	       f == FI_SOCKADDR_IN || f == FI_SOCKADDR_IN6;
}

/* ---- getinfo ------------------------------------------------------------ */

/* FI_PROVIDER=srdma alone hides the provider libsrdma's ofi transport
 * runs on; say so instead of failing obscurely at the first connect. */
static bool provider_env_hides_core(const struct sp_conf *c)
{
	const char *env = getenv("FI_PROVIDER");
	const char *core = c->ofi_provider ? c->ofi_provider : "tcp";
	char *dup, *tok, *save = NULL;
	bool found = false;

	if (!env || !*env || env[0] == '^' ||
	    c->transport != SRDMA_TRANSPORT_OFI)
		return false;
	dup = strdup(env);
	if (!dup)
		return false;
	for (tok = strtok_r(dup, ",", &save); tok && !found;
	     tok = strtok_r(NULL, ",", &save))
		found = !strcasecmp(tok, core);
	free(dup);
	return !found;
}

static bool hints_ok(const struct fi_info *h, uint64_t *caps, uint32_t *mr_mode)
{
	*caps = SP_CAPS;
	*mr_mode = FI_MR_VIRT_ADDR | FI_MR_PROV_KEY | FI_MR_ALLOCATED;
	if (!h)
		return true;
	if (h->caps & ~SP_CAPS)
		return false;
	if (h->caps) {
		*caps = h->caps | (SP_CAPS & (FI_LOCAL_COMM | FI_REMOTE_COMM));
		if (h->caps & FI_MSG && !(h->caps & (FI_SEND | FI_RECV)))
			*caps |= FI_SEND | FI_RECV;
		if (h->caps & FI_RMA &&
		    !(h->caps &
		      (FI_READ | FI_WRITE | FI_REMOTE_READ | FI_REMOTE_WRITE)))
			*caps |= FI_READ | FI_WRITE | FI_REMOTE_READ |
				 FI_REMOTE_WRITE;
	}
	if (!format_ok(h->addr_format))
		return false;
	if (h->ep_attr) {
		if (h->ep_attr->type != FI_EP_UNSPEC &&
		    h->ep_attr->type != FI_EP_MSG)
			return false;
		if (h->ep_attr->max_msg_size > SP_MAX_MSG_SIZE)
			return false;
		if (h->ep_attr->rx_ctx_cnt == FI_SHARED_CONTEXT ||
		    h->ep_attr->tx_ctx_cnt == FI_SHARED_CONTEXT ||
		    h->ep_attr->rx_ctx_cnt > 1 || h->ep_attr->tx_ctx_cnt > 1)
			return false;
		if (h->ep_attr->auth_key_size)
			return false;
	}
	if (h->domain_attr) {
		const struct fi_domain_attr *d = h->domain_attr;

		if (d->name && strcmp(d->name, SP_NAME))
			return false;
		if (d->data_progress == FI_PROGRESS_AUTO ||
		    d->control_progress == FI_PROGRESS_AUTO)
			return false;
		if (d->cq_data_size > 8 || d->mr_key_size > 8)
			return false;
		if (d->mr_mode & (FI_MR_BASIC | FI_MR_SCALABLE)) {
			/* The old names: basic is virtual addresses and our
			 * keys, scalable is offsets and theirs. */
			*mr_mode = d->mr_mode & (FI_MR_BASIC | FI_MR_SCALABLE);
		} else {
			/* The bits the consumer can live with; we need none,
			 * and use these three where allowed. */
			*mr_mode =
				d->mr_mode & (FI_MR_VIRT_ADDR | FI_MR_PROV_KEY |
					      FI_MR_ALLOCATED);
		}
	}
	if (h->fabric_attr && h->fabric_attr->name &&
	    strcmp(h->fabric_attr->name, SP_NAME))
		return false;
	if (h->tx_attr) {
		if ((h->tx_attr->caps & ~SP_CAPS) ||
		    h->tx_attr->inject_size > SP_INJECT_SIZE ||
		    h->tx_attr->iov_limit > SP_IOV_LIMIT ||
		    h->tx_attr->rma_iov_limit > 1 ||
		    h->tx_attr->size > SP_TX_SIZE ||
		    (h->tx_attr->comp_order & ~FI_ORDER_NONE))
			return false;
	}
	if (h->rx_attr) {
		if ((h->rx_attr->caps & ~SP_CAPS) ||
		    h->rx_attr->iov_limit > SP_IOV_LIMIT ||
		    h->rx_attr->size > SP_RX_SIZE ||
		    (h->rx_attr->comp_order & ~FI_ORDER_NONE) ||
		    (h->rx_attr->op_flags & FI_MULTI_RECV))
			return false;
	}
	return true;
}

static int sp_getinfo(uint32_t version, const char *node, const char *service,
		      uint64_t flags, const struct fi_info *hints,
		      struct fi_info **info)
{
	struct sockaddr_storage src, dst;
	size_t src_len = 0, dst_len = 0;
	struct fi_info *fi;
	struct sp_conf conf;
	uint32_t mr_mode;
	uint64_t caps;
	int rc;

	*info = NULL;
	if (!hints_ok(hints, &caps, &mr_mode))
		return -FI_ENODATA;
	if (sp_conf_load(&conf))
		return -FI_ENODATA;
	sp_log_level = conf.log_level;
	if (provider_env_hides_core(&conf)) {
		sp_log(SRDMA_LOG_WARN,
		       "FI_PROVIDER=%s hides the '%s' provider that srdma's "
		       "ofi transport runs on: select srdma in the "
		       "application (e.g. --mca mtl_ofi_provider_include "
		       "srdma) or set FI_PROVIDER=%s,%s",
		       getenv("FI_PROVIDER"),
		       conf.ofi_provider ? conf.ofi_provider : "tcp",
		       getenv("FI_PROVIDER"),
		       conf.ofi_provider ? conf.ofi_provider : "tcp");
		sp_conf_free(&conf);
		return -FI_ENODATA;
	}

	if (node || service) {
		if (flags & FI_SOURCE) {
			if (node) {
				rc = resolve(node, service, true, &src,
					     &src_len);
			} else {
				struct sockaddr_in *sin = (void *)&src;

				default_src(conf.iface, sin);
				sin->sin_port = htons((uint16_t)atoi(
					service ? service : "0"));
				src_len = sizeof(*sin);
				rc = 0;
			}
		} else {
			rc = resolve(node, service, false, &dst, &dst_len);
		}
		if (rc) {
			sp_conf_free(&conf);
			return rc;
		}
	}
	if (hints && hints->src_addr && !src_len &&
	    hints->src_addrlen <= sizeof(src)) {
		memcpy(&src, hints->src_addr, hints->src_addrlen);
		src_len = hints->src_addrlen;
	}
	if (hints && hints->dest_addr && !dst_len &&
	    hints->dest_addrlen <= sizeof(dst)) {
		memcpy(&dst, hints->dest_addr, hints->dest_addrlen);
		dst_len = hints->dest_addrlen;
	}
	if (!src_len && (!dst_len || dst.ss_family == AF_INET)) {
		/* A passive endpoint opened from this info listens here, and
		 * ofi_rxm hands its name to peers: never the wildcard. */
		default_src(conf.iface, (struct sockaddr_in *)&src);
		src_len = sizeof(struct sockaddr_in);
	}
	sp_conf_free(&conf);

	fi = fi_allocinfo();
	if (!fi)
		return -FI_ENOMEM;
	fi->caps = caps;
	fi->mode = 0;
	fi->addr_format = addr_format_of(src_len ? src_len : dst_len);
	if (src_len) {
		fi->src_addr = malloc(src_len);
		if (!fi->src_addr)
			goto out_nomem;
		memcpy(fi->src_addr, &src, src_len);
		fi->src_addrlen = src_len;
	}
	if (dst_len) {
		fi->dest_addr = malloc(dst_len);
		if (!fi->dest_addr)
			goto out_nomem;
		memcpy(fi->dest_addr, &dst, dst_len);
		fi->dest_addrlen = dst_len;
	}

	fi->tx_attr->caps = caps;
	fi->tx_attr->op_flags =
		hints && hints->tx_attr ? hints->tx_attr->op_flags : 0;
	/* One ordered stream: every ordering holds. */
	fi->tx_attr->msg_order =
		SP_ORDER |
		(hints && hints->tx_attr ? hints->tx_attr->msg_order : 0);
	fi->tx_attr->comp_order = FI_ORDER_NONE;
	fi->tx_attr->inject_size = SP_INJECT_SIZE;
	fi->tx_attr->size = SP_TX_SIZE;
	fi->tx_attr->iov_limit = SP_IOV_LIMIT;
	fi->tx_attr->rma_iov_limit = 1;

	fi->rx_attr->caps = caps;
	fi->rx_attr->op_flags =
		hints && hints->rx_attr ? hints->rx_attr->op_flags : 0;
	fi->rx_attr->msg_order =
		SP_ORDER |
		(hints && hints->rx_attr ? hints->rx_attr->msg_order : 0);
	fi->rx_attr->comp_order = FI_ORDER_NONE;
	fi->rx_attr->total_buffered_recv = 0;
	fi->rx_attr->size = SP_RX_SIZE;
	fi->rx_attr->iov_limit = SP_IOV_LIMIT;

	fi->ep_attr->type = FI_EP_MSG;
	fi->ep_attr->protocol = FI_PROTO_UNSPEC;
	fi->ep_attr->protocol_version = 1;
	fi->ep_attr->max_msg_size = SP_MAX_MSG_SIZE;
	fi->ep_attr->msg_prefix_size = 0;
	fi->ep_attr->max_order_raw_size = SP_MAX_MSG_SIZE;
	fi->ep_attr->max_order_war_size = SP_MAX_MSG_SIZE;
	fi->ep_attr->max_order_waw_size = SP_MAX_MSG_SIZE;
	fi->ep_attr->tx_ctx_cnt = 1;
	fi->ep_attr->rx_ctx_cnt = 1;

	fi->domain_attr->name = strdup(SP_NAME);
	if (!fi->domain_attr->name)
		goto out_nomem;
	fi->domain_attr->threading =
		hints && hints->domain_attr && hints->domain_attr->threading
			? hints->domain_attr->threading
			: FI_THREAD_SAFE;
	fi->domain_attr->control_progress = FI_PROGRESS_MANUAL;
	fi->domain_attr->data_progress = FI_PROGRESS_MANUAL;
	fi->domain_attr->resource_mgmt = FI_RM_ENABLED;
	fi->domain_attr->av_type = FI_AV_UNSPEC;
	fi->domain_attr->mr_mode = mr_mode;
	fi->domain_attr->mr_key_size = 8;
	fi->domain_attr->cq_data_size = 8;
	fi->domain_attr->cq_cnt = 1024;
	fi->domain_attr->ep_cnt = 65536;
	fi->domain_attr->tx_ctx_cnt = 65536;
	fi->domain_attr->rx_ctx_cnt = 65536;
	fi->domain_attr->max_ep_tx_ctx = 1;
	fi->domain_attr->max_ep_rx_ctx = 1;
	fi->domain_attr->max_ep_stx_ctx = 0;
	fi->domain_attr->max_ep_srx_ctx = 0;
	fi->domain_attr->cntr_cnt = 0;
	fi->domain_attr->mr_iov_limit = 1;
	fi->domain_attr->caps = FI_LOCAL_COMM | FI_REMOTE_COMM;
	fi->domain_attr->mr_cnt = 1 << 20;
	fi->domain_attr->max_err_data = SP_ERR_TEXT;

	fi->fabric_attr->name = strdup(SP_NAME);
	if (!fi->fabric_attr->name)
		goto out_nomem;
	fi->fabric_attr->prov_version = sp_prov.version;
	/* prov_name stays NULL: libfabric's core fills it in. */
	*info = fi;
	return 0;

out_nomem:
	fi_freeinfo(fi);
	return -FI_ENOMEM;
}

FI_EXT_INI
{
	define_params();
	return &sp_prov;
}
