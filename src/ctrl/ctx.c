/* SPDX-License-Identifier: MIT */
/*
 * Control channel: the TLS context. Certificate, private key and CA
 * files (checked, loaded, matched), TLS 1.3 pinned, the allow-list, the
 * CRL, verification set up per role, reload; and the certificate paths
 * helper.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "ctrl/ctrl_int.h"

/* ---------------------------------------------------------------------- */
/* Helpers                                                                 */

int srdma__ctrl_idx = -1;

static CRYPTO_ONCE idx_once = CRYPTO_ONCE_STATIC_INIT;

static void idx_init(void)
{
	srdma__ctrl_idx =
		SSL_get_ex_new_index(0, "srdma ctrl", NULL, NULL, NULL);
}

/* The first error on the OpenSSL queue, as text; clears the queue. */
const char *srdma__ctrl_ossl_reason(char *buf, size_t len)
{
	unsigned long e = ERR_peek_error();

	if (!e) {
		snprintf(buf, len, "no OpenSSL error recorded");
	} else {
		const char *r = ERR_reason_error_string(e);

		if (r)
			snprintf(buf, len, "%s", r);
		else
			snprintf(buf, len, "OpenSSL error 0x%lx", e);
	}
	ERR_clear_error();
	return buf;
}

static char *dup_str(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* ---------------------------------------------------------------------- */
/* Context                                                                 */

static int check_readable(const char *what, const char *path)
{
	struct stat st;

	ENSURE(path && path[0], SRDMA_ECONFIG, "no %s file was given", what);
	if (stat(path, &st) < 0)
		return srdma__err(SRDMA_ECONFIG, "cannot use %s file %s: %s",
				  what, path, strerror(errno));
	ENSURE(S_ISREG(st.st_mode), SRDMA_ECONFIG,
	       "%s file %s is not a regular file", what, path);
	ENSURE(access(path, R_OK) == 0, SRDMA_ECONFIG,
	       "cannot read %s file %s: %s", what, path, strerror(errno));
	return 0;
}

/* Whether CA certificate x signed crl (names can repeat: the key decides). */
static bool signed_by(X509_CRL *crl, X509 *x)
{
	bool ok = x &&
		  !X509_NAME_cmp(X509_get_subject_name(x),
				 X509_CRL_get_issuer(crl)) &&
		  X509_CRL_verify(crl, X509_get0_pubkey(x)) == 1;

	ERR_clear_error();
	return ok;
}

/* The CA certificate in store that signed crl, or NULL. */
static X509 *crl_issuer(X509_STORE *store, X509_CRL *crl)
{
	STACK_OF(X509_OBJECT) *objs = X509_STORE_get0_objects(store);

	for (int i = 0; i < sk_X509_OBJECT_num(objs); i++) {
		X509 *x = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i));

		if (signed_by(crl, x))
			return x;
	}
	return NULL;
}

static const char *subject_str(X509 *x, char *buf, size_t len)
{
	X509_NAME_oneline(X509_get_subject_name(x), buf, (int)len);
	return buf;
}

/*
 * The CRL file: every CRL in it signed by a CA of the store and current,
 * every CA of the store covered (with X509_V_FLAG_CRL_CHECK a client of a
 * CA without a CRL would be refused as "unable to get CRL": say so now, not
 * at the first client). Checked at start and at every reload.
 */
static int load_crls(struct srdma__tls_ctx *t, const char *file)
{
	X509_STORE *store = SSL_CTX_get_cert_store(t->ssl_ctx);
	STACK_OF(X509_OBJECT) * objs;
	STACK_OF(X509_INFO) *infos = NULL;
	char why[256], name[256], when[64];
	time_t now = time(NULL);
	BIO *b;
	int rc = 0;

	GUARD(check_readable("CRL", file));
	t->crl_file = dup_str(file);
	t->crls = sk_X509_CRL_new_null();
	t->crl_cas = sk_X509_new_null();
	ENSURE(t->crl_file && t->crls && t->crl_cas, SRDMA_ENOMEM,
	       "out of memory for a CRL");
	ERR_clear_error();
	b = BIO_new_file(file, "r");
	if (b)
		infos = PEM_X509_INFO_read_bio(b, NULL, NULL, NULL);
	BIO_free(b);
	if (!infos)
		return srdma__err(SRDMA_ECONFIG,
				  "cannot read a CRL from %s: %s", file,
				  srdma__ctrl_ossl_reason(why, sizeof(why)));
	for (int i = 0; rc == 0 && i < sk_X509_INFO_num(infos); i++) {
		X509_CRL *crl = sk_X509_INFO_value(infos, i)->crl;
		const ASN1_TIME *next;
		X509 *ca;

		if (!crl)
			continue;
		next = X509_CRL_get0_nextUpdate(crl);
		ca = crl_issuer(store, crl);
		X509_NAME_oneline(X509_CRL_get_issuer(crl), name, sizeof(name));
		if (!ca) {
			rc = srdma__err(SRDMA_ECONFIG,
					"the CRL of %s in %s is not signed by "
					"a CA in %s",
					name, file, t->ca_file);
		} else if (X509_cmp_time(X509_CRL_get0_lastUpdate(crl), &now) >
			   0) {
			srdma__ctrl_asn1_time_str(X509_CRL_get0_lastUpdate(crl),
						  when, sizeof(when));
			rc = srdma__err(SRDMA_ECONFIG,
					"the CRL of %s in %s is not valid "
					"until %s (check the clock)",
					name, file, when);
		} else if (!next || X509_cmp_time(next, &now) <= 0) {
			srdma__ctrl_asn1_time_str(next, when, sizeof(when));
			rc = srdma__err(SRDMA_ECONFIG,
					"the CRL of %s in %s %s%s: publish a "
					"new one with the CA and reload",
					name, file,
					next ? "expired on "
					     : "has no next "
					       "update",
					next ? when : "");
		} else if (X509_STORE_add_crl(store, crl) != 1 ||
			   !X509_CRL_up_ref(crl)) {
			rc = srdma__err(
				SRDMA_ENOMEM, "cannot keep the CRL: %s",
				srdma__ctrl_ossl_reason(why, sizeof(why)));
		} else if (!sk_X509_CRL_push(t->crls, crl)) {
			X509_CRL_free(crl);
			rc = srdma__err(SRDMA_ENOMEM,
					"out of memory for a CRL");
		} else if (!X509_up_ref(ca) || !sk_X509_push(t->crl_cas, ca)) {
			X509_CRL_free(sk_X509_CRL_pop(t->crls));
			rc = srdma__err(SRDMA_ENOMEM,
					"out of memory for a CRL");
		}
	}
	sk_X509_INFO_pop_free(infos, X509_INFO_free);
	GUARD(rc);
	ENSURE(sk_X509_CRL_num(t->crls) > 0, SRDMA_ECONFIG,
	       "no CRL in %s (a PEM \"X509 CRL\" block from each CA)", file);
	objs = X509_STORE_get0_objects(store);
	for (int i = 0; i < sk_X509_OBJECT_num(objs); i++) {
		X509 *x = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i));
		bool covered = false;

		for (int k = 0; x && !covered && k < sk_X509_CRL_num(t->crls);
		     k++)
			covered = signed_by(sk_X509_CRL_value(t->crls, k), x);
		ENSURE(!x || covered, SRDMA_ECONFIG,
		       "%s has no CRL for the CA %s in %s (with a CRL file "
		       "every CA needs one, or its clients are refused)",
		       file, subject_str(x, name, sizeof(name)), t->ca_file);
	}
	/* The leaf only: our CAs are the trust anchors. */
	X509_STORE_set_flags(store, X509_V_FLAG_CRL_CHECK);
	return 0;
}

struct srdma__tls_ctx *srdma__tls_ctx_ref(struct srdma__tls_ctx *t)
{
	atomic_fetch_add(&t->refs, 1);
	return t;
}

static int tls_ctx_new(const struct srdma__tls_config *cfg,
		       const struct srdma__tls_ctx *old,
		       struct srdma__tls_ctx **out)
{
	char why[256];
	struct srdma__tls_ctx *t;
	STACK_OF(X509_NAME) * cas;
	int rc;

	*out = NULL;
	ENSURE(cfg, SRDMA_EINVAL, "no TLS configuration");
	GUARD(check_readable("certificate", cfg->cert_file));
	GUARD(check_readable("private key", cfg->key_file));
	GUARD(check_readable("CA certificate", cfg->ca_file));
	if (!CRYPTO_THREAD_run_once(&idx_once, idx_init) || srdma__ctrl_idx < 0)
		return srdma__err(SRDMA_ENOMEM, "cannot set up OpenSSL: %s",
				  srdma__ctrl_ossl_reason(why, sizeof(why)));

	t = calloc(1, sizeof(*t));
	if (!t)
		return srdma__err(SRDMA_ENOMEM,
				  "out of memory for TLS context");
	atomic_init(&t->refs, 1);
	t->server = cfg->server;
	t->ca_file = dup_str(cfg->ca_file);
	t->cert_file = dup_str(cfg->cert_file);
	t->key_file = dup_str(cfg->key_file);
	if (!t->ca_file || !t->cert_file || !t->key_file) {
		rc = srdma__err(SRDMA_ENOMEM, "out of memory for TLS context");
		goto out_free_t;
	}
	if (cfg->allow) {
		size_t n = 0;

		while (cfg->allow[n])
			n++;
		t->allow = calloc(n + 1, sizeof(*t->allow));
		if (!t->allow) {
			rc = srdma__err(SRDMA_ENOMEM,
					"out of memory for allow-list");
			goto out_free_t;
		}
		for (size_t i = 0; i < n; i++) {
			t->allow[i] = strdup(cfg->allow[i]);
			if (!t->allow[i]) {
				rc = srdma__err(SRDMA_ENOMEM,
						"out of memory for allow-list");
				goto out_free_t;
			}
		}
	}

	ERR_clear_error();
	t->ssl_ctx = SSL_CTX_new(cfg->server ? TLS_server_method()
					     : TLS_client_method());
	if (!t->ssl_ctx) {
		rc = srdma__err(SRDMA_ENOMEM, "cannot create TLS context: %s",
				srdma__ctrl_ossl_reason(why, sizeof(why)));
		goto out_free_t;
	}
	/* Design brief §3: TLS 1.3, nothing older. */
	if (!SSL_CTX_set_min_proto_version(t->ssl_ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(t->ssl_ctx, TLS1_3_VERSION)) {
		rc = srdma__err(SRDMA_ETLS, "cannot pin TLS 1.3: %s",
				srdma__ctrl_ossl_reason(why, sizeof(why)));
		goto out_free_t;
	}
	rc = srdma__ctrl_resumption_setup(t, cfg, old);
	if (rc < 0)
		goto out_free_t;
	SSL_CTX_set_mode(t->ssl_ctx,
			 SSL_MODE_ENABLE_PARTIAL_WRITE |
				 SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);

	if (SSL_CTX_use_certificate_chain_file(t->ssl_ctx, cfg->cert_file) !=
	    1) {
		rc = srdma__err(SRDMA_ECONFIG,
				"cannot load the certificate in %s: %s",
				cfg->cert_file,
				srdma__ctrl_ossl_reason(why, sizeof(why)));
		goto out_free_t;
	}
	if (SSL_CTX_use_PrivateKey_file(t->ssl_ctx, cfg->key_file,
					SSL_FILETYPE_PEM) != 1) {
		unsigned long e = ERR_peek_last_error();

		if (ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH) {
			ERR_clear_error();
			rc = srdma__err(SRDMA_ECONFIG,
					"the private key in %s does not match "
					"the certificate in %s (use the .key "
					"and .crt of the same identity)",
					cfg->key_file, cfg->cert_file);
		} else {
			rc = srdma__err(
				SRDMA_ECONFIG,
				"cannot load the private key in %s: %s",
				cfg->key_file,
				srdma__ctrl_ossl_reason(why, sizeof(why)));
		}
		goto out_free_t;
	}
	if (SSL_CTX_check_private_key(t->ssl_ctx) != 1) {
		ERR_clear_error();
		rc = srdma__err(SRDMA_ECONFIG,
				"the private key in %s does not match the "
				"certificate in %s (use the .key and .crt of "
				"the same identity)",
				cfg->key_file, cfg->cert_file);
		goto out_free_t;
	}
	if (SSL_CTX_load_verify_locations(t->ssl_ctx, cfg->ca_file, NULL) !=
	    1) {
		rc = srdma__err(SRDMA_ECONFIG,
				"cannot load a CA certificate from %s: %s",
				cfg->ca_file,
				srdma__ctrl_ossl_reason(why, sizeof(why)));
		goto out_free_t;
	}
	if (cfg->crl_file) {
		rc = load_crls(t, cfg->crl_file);
		if (rc < 0)
			goto out_free_t;
	}
	if (srdma__ctrl_trust_digest(t) < 0) {
		rc = srdma__err(SRDMA_ETLS,
				"cannot digest the CA certificates: %s",
				srdma__ctrl_ossl_reason(why, sizeof(why)));
		goto out_free_t;
	}
	if (cfg->server) {
		SSL_CTX_set_verify(t->ssl_ctx,
				   SSL_VERIFY_PEER |
					   SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
				   srdma__ctrl_verify_cb);
		/* Tell clients which CA we accept (CertificateRequest). */
		cas = SSL_load_client_CA_file(cfg->ca_file);
		if (cas)
			SSL_CTX_set_client_CA_list(t->ssl_ctx, cas);
		if (srdma__ctrl_set_sid_ctx(t->ssl_ctx) < 0) {
			rc = srdma__err(
				SRDMA_ETLS,
				"cannot set the TLS session id "
				"context: %s",
				srdma__ctrl_ossl_reason(why, sizeof(why)));
			goto out_free_t;
		}
	} else {
		SSL_CTX_set_verify(t->ssl_ctx, SSL_VERIFY_PEER,
				   srdma__ctrl_verify_cb);
	}
	ERR_clear_error();
	*out = t;
	return 0;

out_free_t:
	srdma__tls_ctx_destroy(t);
	return rc;
}

int srdma__tls_ctx_create(const struct srdma__tls_config *cfg,
			  struct srdma__tls_ctx **out)
{
	return tls_ctx_new(cfg, NULL, out);
}

int srdma__tls_ctx_reload(struct srdma__tls_ctx *old,
			  const struct srdma__tls_config *cfg,
			  struct srdma__tls_ctx **out)
{
	*out = NULL;
	ENSURE(old && cfg && old->server == cfg->server, SRDMA_EINVAL,
	       "a reload keeps the role of the context");
	return tls_ctx_new(cfg, old, out);
}

void srdma__tls_ctx_destroy(struct srdma__tls_ctx *t)
{
	if (!t || atomic_fetch_sub(&t->refs, 1) > 1)
		return;
	SSL_CTX_free(t->ssl_ctx);
	sk_X509_CRL_pop_free(t->crls, X509_CRL_free);
	sk_X509_pop_free(t->crl_cas, X509_free);
	free(t->crl_file);
	srdma__sess_cache_destroy(t->cache);
	srdma__replay_destroy(t->replay);
	srdma__ticket_keys_destroy(t->keys); /* wipes them */
	if (t->allow) {
		for (size_t i = 0; t->allow[i]; i++)
			free(t->allow[i]);
		free(t->allow);
	}
	free(t->ca_file);
	free(t->cert_file);
	free(t->key_file);
	free(t);
}

int srdma__certs_paths(const char *dir, const char *name, char *cert,
		       size_t cert_len, char *key, size_t key_len, char *ca,
		       size_t ca_len)
{
	struct {
		char *buf;
		size_t len;
		const char *base;
		const char *ext;
	} f[3] = {
		{cert, cert_len, name, ".crt"},
		{key, key_len, name, ".key"},
		{ca, ca_len, "ca", ".crt"},
	};

	ENSURE(dir && dir[0], SRDMA_ECONFIG, "no certificate directory given");
	ENSURE(name && name[0] && !strchr(name, '/'), SRDMA_ECONFIG,
	       "invalid identity name '%s' for %s", name ? name : "", dir);
	for (int i = 0; i < 3; i++) {
		int n = snprintf(f[i].buf, f[i].len, "%s/%s%s", dir, f[i].base,
				 f[i].ext);

		ENSURE(n > 0 && (size_t)n < f[i].len, SRDMA_ECONFIG,
		       "path %s/%s%s is too long", dir, f[i].base, f[i].ext);
		if (access(f[i].buf, R_OK) < 0)
			return srdma__err(SRDMA_ECONFIG,
					  "cannot read %s: %s (create it with "
					  "`srdma certs %s`)",
					  f[i].buf, strerror(errno), dir);
	}
	return 0;
}
