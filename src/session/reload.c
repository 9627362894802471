/* SPDX-License-Identifier: MIT */
/*
 * srdma_ctx_reload: certificate, key, CA, CRL and allow-list read again and
 * swapped in for new handshakes (ctrl keeps the ticket keys and checks the
 * trust a ticket was issued under).
 */
#include <stdlib.h>
#include <string.h>

#include "session/conn.h"
#include "session/metrics.h"

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static char **dup_list(const char *const *l, bool *ok)
{
	size_t n = 0;
	char **d;

	*ok = true;
	if (!l)
		return NULL;
	while (l[n])
		n++;
	d = calloc(n + 1, sizeof(*d));
	for (size_t i = 0; d && i < n; i++)
		if (!(d[i] = strdup(l[i]))) {
			while (i--)
				free(d[i]);
			free(d);
			d = NULL;
		}
	*ok = d != NULL;
	return d;
}

static void free_list(char **l)
{
	for (size_t i = 0; l && l[i]; i++)
		free(l[i]);
	free(l);
}

/* The material a reload reads: owned copies, swapped in on success. */
struct material {
	char *cert, *key, *ca, *crl;
	char **allow;
};

static void material_free(struct material *m)
{
	free(m->cert);
	free(m->key);
	free(m->ca);
	free(m->crl);
	free_list(m->allow);
}

static int material_of(const struct srdma_ctx *ctx,
		       const struct srdma_config *cfg, struct material *m)
{
	char cert[4096], key[4096], ca[4096];
	const char *c = ctx->s_cert, *k = ctx->s_key, *a = ctx->s_ca;
	const char *crl = ctx->s_crl;
	const char *const *allow = ctx->cfg.allow;
	bool ok;

	if (cfg) {
		c = cfg->cert_file;
		k = cfg->key_file;
		a = cfg->ca_file;
		crl = cfg->crl_file;
		allow = cfg->allow;
	}
	if (!c || !k || !a) {
		const char *name = cfg ? cfg->identity : NULL;

		ENSURE(cfg && cfg->certs_dir, SRDMA_ECONFIG,
		       "no certificates to reload: give certs_dir or "
		       "cert_file, key_file and ca_file");
		if (!name)
			name = ctx->cfg.role == SRDMA_ROLE_SERVER ? "server"
								  : "client";
		GUARD(srdma__certs_paths(cfg->certs_dir, name, cert,
					 sizeof(cert), key, sizeof(key), ca,
					 sizeof(ca)));
		c = c ? c : cert;
		k = k ? k : key;
		a = a ? a : ca;
	}
	m->cert = strdup(c);
	m->key = strdup(k);
	m->ca = strdup(a);
	m->crl = dup_or_null(crl);
	m->allow = dup_list(allow, &ok);
	ENSURE(m->cert && m->key && m->ca && (m->crl || !crl) && ok,
	       SRDMA_ENOMEM, "out of memory reloading");
	return 0;
}

SRDMA_API int srdma_ctx_reload(srdma_ctx *ctx, const struct srdma_config *cfg)
{
	struct srdma__tls_config tc = {0};
	struct srdma__tls_ctx *t = NULL, *old;
	struct material m = {0};
	int rc;

	srdma__err_clear();
	ENSURE(ctx, SRDMA_EINVAL, "srdma_ctx_reload: NULL context");
	rc = material_of(ctx, cfg, &m);
	if (rc == 0) {
		tc.server = ctx->cfg.role == SRDMA_ROLE_SERVER;
		tc.cert_file = m.cert;
		tc.key_file = m.key;
		tc.ca_file = m.ca;
		tc.crl_file = m.crl;
		tc.allow = (const char *const *)m.allow;
		tc.no_resumption = ctx->cfg.no_resumption;
		tc.defer_tickets = true;
		tc.ticket_rotate_s = ctx->cfg.ticket_rotate_s;
		rc = srdma__tls_ctx_reload(ctx->tls, &tc, &t);
	}
	if (rc < 0) {
		char d[512];

		srdma__err_copy(d, sizeof(d));
		material_free(&m);
		srdma__metric_add(ctx, SRDMA__M_RELOAD_FAILURES, 1);
		srdma__log(&ctx->log, SRDMA_LOG_WARN,
			   "reload failed, keeping the old certificates: %s",
			   d);
		return srdma__err(rc, "%s", d);
	}
	/* New handshakes use t; connections made so far keep the old
	 * context (their reference) until they are destroyed. */
	old = ctx->tls;
	ctx->tls = t;
	srdma__tls_ctx_destroy(old);
	free(ctx->s_cert);
	free(ctx->s_key);
	free(ctx->s_ca);
	free(ctx->s_crl);
	free_list(ctx->allow);
	ctx->cfg.cert_file = ctx->s_cert = m.cert;
	ctx->cfg.key_file = ctx->s_key = m.key;
	ctx->cfg.ca_file = ctx->s_ca = m.ca;
	ctx->cfg.crl_file = ctx->s_crl = m.crl;
	ctx->allow = m.allow;
	ctx->cfg.allow = (const char *const *)ctx->allow;
	srdma__metric_add(ctx, SRDMA__M_RELOADS, 1);
	srdma__log(&ctx->log, SRDMA_LOG_INFO,
		   "reloaded certificate %s, CA %s%s%s", ctx->s_cert, ctx->s_ca,
		   ctx->s_crl ? ", CRL " : "", ctx->s_crl ? ctx->s_crl : "");
	return 0;
}
