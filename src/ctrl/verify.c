/* SPDX-License-Identifier: MIT */
/*
 * Control channel: certificates. The identities a certificate carries
 * (CN, SANs), the allow-list check, the verify callback, and the mapping
 * of a failed handshake or I/O call to the most specific SRDMA_E* code
 * with a detail a user can act on.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "ctrl/ctrl_int.h"

/* Subject CN of x into buf (may be ""). */
static void cert_cn(X509 *x, char *buf, size_t len)
{
	X509_NAME *n = x ? X509_get_subject_name(x) : NULL;
	int i = n ? X509_NAME_get_index_by_NID(n, NID_commonName, -1) : -1;
	const ASN1_STRING *s;

	buf[0] = '\0';
	if (i < 0)
		return;
	s = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(n, i));
	if (!s)
		return;
	snprintf(buf, len, "%.*s", ASN1_STRING_length(s),
		 (const char *)ASN1_STRING_get0_data(s));
	/* An embedded NUL would let "alice\0.evil" pass as "alice". */
	if (strlen(buf) != (size_t)ASN1_STRING_length(s))
		buf[0] = '\0';
}

/* Calls fn for the CN and each DNS/email/URI SAN; stops when fn is true. */
bool srdma__ctrl_for_each_identity(X509 *x, name_fn fn, void *arg)
{
	char cn[NAME_MAX_LEN];
	GENERAL_NAMES *gens;
	bool hit = false;

	cert_cn(x, cn, sizeof(cn));
	if (cn[0] && fn(arg, cn))
		return true;
	gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; !hit && i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
		const ASN1_IA5STRING *s;
		char name[NAME_MAX_LEN];

		if (g->type == GEN_DNS)
			s = g->d.dNSName;
		else if (g->type == GEN_EMAIL)
			s = g->d.rfc822Name;
		else if (g->type == GEN_URI)
			s = g->d.uniformResourceIdentifier;
		else
			continue;
		if (ASN1_STRING_length(s) <= 0 ||
		    ASN1_STRING_length(s) >= (int)sizeof(name))
			continue;
		memcpy(name, ASN1_STRING_get0_data(s),
		       (size_t)ASN1_STRING_length(s));
		name[ASN1_STRING_length(s)] = '\0';
		if (strlen(name) != (size_t)ASN1_STRING_length(s))
			continue;
		hit = fn(arg, name);
	}
	GENERAL_NAMES_free(gens);
	return hit;
}

static bool on_allow_list(void *arg, const char *name)
{
	char *const *allow = arg;

	for (size_t i = 0; allow[i]; i++)
		if (!strcmp(allow[i], name))
			return true;
	return false;
}

/*
 * Captures the leaf certificate as it is verified: on a verification
 * failure libssl does not keep the peer's certificate, and the detail
 * should still name whom we rejected and, for an expired one, since when.
 */
bool srdma__ctrl_allowed_by(const struct srdma__tls_ctx *t, X509 *peer)
{
	if (!t->allow)
		return true;
	return srdma__ctrl_for_each_identity(peer, on_allow_list, t->allow);
}

int srdma__ctrl_revoked(const struct srdma__tls_ctx *t, X509 *cert, time_t now)
{
	if (!t->crls)
		return 0;
	for (int i = 0; i < sk_X509_CRL_num(t->crls); i++) {
		X509_CRL *crl = sk_X509_CRL_value(t->crls, i);
		const ASN1_TIME *next = X509_CRL_get0_nextUpdate(crl);
		X509_REVOKED *rev = NULL;

		/* the CRL of the CA that issued cert (name and key id) */
		if (X509_check_issued(sk_X509_value(t->crl_cas, i), cert) !=
		    X509_V_OK)
			continue;
		if (!next || X509_cmp_time(next, &now) <= 0)
			return -1;
		return X509_CRL_get0_by_cert(crl, &rev, cert) == 1 ? 1 : 0;
	}
	return -1; /* load_crls covers every CA: an issuer we do not know */
}

int srdma__ctrl_verify_cb(int ok, X509_STORE_CTX *x)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(
		x, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct srdma__ctrl *c =
		ssl ? SSL_get_ex_data(ssl, srdma__ctrl_idx) : NULL;
	X509 *leaf = X509_STORE_CTX_get0_cert(x);

	if (c && leaf && !c->leaf && X509_up_ref(leaf))
		c->leaf = leaf;
	/*
	 * A client we are about to refuse gets no ticket (the refusal itself
	 * happens in handshake_done, as for everyone).
	 */
	if (c && c->server && ok && leaf &&
	    X509_STORE_CTX_get_error_depth(x) == 0 &&
	    !srdma__ctrl_allowed_by(c->t, leaf))
		SSL_set_num_tickets(ssl, 0);
	return ok;
}

/* ---------------------------------------------------------------------- */
/* Failure mapping                                                         */

static const char *own_cn(struct srdma__ctrl *c, char *buf, size_t len)
{
	cert_cn(SSL_get_certificate(c->ssl), buf, len);
	return buf;
}

/* "client certificate 'bob'" / "server certificate for 'localhost'" */
static void peer_desc(const struct srdma__ctrl *c, char *buf, size_t len)
{
	char cn[NAME_MAX_LEN];

	cert_cn(c->leaf, cn, sizeof(cn));
	if (c->server)
		snprintf(buf, len, "client certificate '%s'",
			 cn[0] ? cn : "(no CN)");
	else if (cn[0])
		snprintf(buf, len, "server certificate for '%s' (CN '%s')",
			 c->peer_name, cn);
	else
		snprintf(buf, len, "server certificate for '%s'", c->peer_name);
}

void srdma__ctrl_asn1_time_str(const ASN1_TIME *tm, char *buf, size_t len)
{
	struct tm t;

	if (tm && ASN1_TIME_to_tm(tm, &t))
		strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &t);
	else
		snprintf(buf, len, "(unknown time)");
}

static int verify_failure(struct srdma__ctrl *c, long v)
{
	const char *fix = c->server ? "reissue it with `srdma certs` from "
				      "the server's CA, or check the "
				      "client's certs_dir"
				    : "check ca_file/certs_dir";
	char who[2 * NAME_MAX_LEN + 64], when[64];

	peer_desc(c, who, sizeof(who));
	switch (v) {
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_CERT_SIGNATURE_FAILURE:
	case X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE:
	case X509_V_ERR_CERT_UNTRUSTED:
		return srdma__err(SRDMA_ECERT_UNKNOWN_CA,
				  "%s is not signed by the CA in %s (%s)", who,
				  c->t->ca_file, fix);
	case X509_V_ERR_CERT_HAS_EXPIRED:
		srdma__ctrl_asn1_time_str(c->leaf ? X509_get0_notAfter(c->leaf)
						  : NULL,
					  when, sizeof(when));
		return srdma__err(SRDMA_ECERT_EXPIRED,
				  "%s expired on %s (issue a new one with "
				  "`srdma certs`, or check the clock)",
				  who, when);
	case X509_V_ERR_CERT_NOT_YET_VALID:
		srdma__ctrl_asn1_time_str(c->leaf ? X509_get0_notBefore(c->leaf)
						  : NULL,
					  when, sizeof(when));
		return srdma__err(SRDMA_ECERT_NOT_YET_VALID,
				  "%s is not valid until %s (check the clock "
				  "on both hosts)",
				  who, when);
	case X509_V_ERR_CERT_REVOKED:
		return srdma__err(SRDMA_ECERT_REVOKED,
				  "%s has been revoked (it is on the CRL in "
				  "%s; a new certificate is needed)",
				  who, c->t->crl_file ? c->t->crl_file : "?");
	case X509_V_ERR_UNABLE_TO_GET_CRL:
	case X509_V_ERR_CRL_HAS_EXPIRED:
	case X509_V_ERR_CRL_NOT_YET_VALID:
	case X509_V_ERR_CRL_SIGNATURE_FAILURE:
	case X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER:
		return srdma__err(SRDMA_ETLS,
				  "cannot check %s for revocation: %s in %s "
				  "(publish a current CRL and reload)",
				  who, X509_verify_cert_error_string(v),
				  c->t->crl_file ? c->t->crl_file : "?");
	case X509_V_ERR_HOSTNAME_MISMATCH:
	case X509_V_ERR_IP_ADDRESS_MISMATCH:
		return srdma__err(SRDMA_ECERT_NAME,
				  "%s does not carry the name '%s' (connect "
				  "with a name it has, or reissue it with "
				  "`srdma certs --name %s`)",
				  who, c->peer_name, c->peer_name);
	default:
		return srdma__err(SRDMA_ETLS, "%s failed verification: %s (%s)",
				  who, X509_verify_cert_error_string(v), fix);
	}
}

/* The alert the peer sent us, from its ERR reason (SSL_AD_REASON_OFFSET). */
static int alert_failure(struct srdma__ctrl *c, int reason)
{
	const char *rej = c->server ? "the client rejected our certificate"
				    : "the server rejected our certificate";
	char cn[NAME_MAX_LEN];
	X509 *mine = SSL_get_certificate(c->ssl);

	cert_cn(mine, cn, sizeof(cn));
	switch (reason) {
	case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
		return srdma__err(SRDMA_ECERT_UNKNOWN_CA,
				  "%s: unknown ca (our certificate '%s' is not "
				  "signed by the CA the peer trusts; check "
				  "certs_dir on both sides)",
				  rej, cn);
	case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
		return srdma__err(SRDMA_ECERT_EXPIRED,
				  "%s: certificate expired (issue a new one "
				  "for '%s' with `srdma certs`)",
				  rej, cn);
	case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
		/* OpenSSL sends bad_certificate for a not-yet-valid one. */
		if (mine &&
		    X509_cmp_current_time(X509_get0_notBefore(mine)) > 0)
			return srdma__err(SRDMA_ECERT_NOT_YET_VALID,
					  "%s: bad certificate (ours, '%s', is "
					  "not valid yet; check the clock)",
					  rej, cn);
		if (c->server)
			return srdma__err(SRDMA_ETLS,
					  "%s: bad certificate (does '%s' "
					  "carry the name or address the "
					  "client connects to? see `srdma "
					  "certs --name`)",
					  rej, cn);
		return srdma__err(SRDMA_ETLS, "%s: bad certificate ('%s')", rej,
				  cn);
	case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
		return srdma__err(SRDMA_ECERT_REVOKED,
				  "%s: certificate revoked ('%s' is on the "
				  "peer's revocation list; a new certificate "
				  "is needed)",
				  rej, cn);
	case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
	case SSL_R_SSLV3_ALERT_NO_CERTIFICATE:
		return srdma__err(SRDMA_ECERT_MISSING,
				  "%s: certificate required (give a client "
				  "certificate: certs_dir or cert_file)",
				  rej);
	case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
		return srdma__err(SRDMA_ENOT_ALLOWED,
				  "%s: access denied ('%s' is not on the "
				  "peer's allow-list)",
				  rej, cn);
	case SSL_R_TLSV1_ALERT_PROTOCOL_VERSION:
		return srdma__err(SRDMA_ETLS_VERSION,
				  "the peer refused TLS 1.3 (protocol version "
				  "alert); it must support TLS 1.3");
	default:
		return srdma__err(SRDMA_ETLS,
				  "the peer aborted the TLS "
				  "handshake: %s",
				  ERR_reason_error_string(
					  ERR_PACK(ERR_LIB_SSL, 0, reason)));
	}
}

static bool peek_is_tls(const struct srdma__ctrl *c)
{
	/* record type change_cipher_spec..heartbeat, version major 3 */
	if (c->peek_len >= 1 && (c->peek[0] < 20 || c->peek[0] > 24))
		return false;
	if (c->peek_len >= 2 && c->peek[1] != 3)
		return false;
	return true;
}

static int not_tls(struct srdma__ctrl *c)
{
	char shown[PEEK_LEN * 4 + 1];
	size_t n = 0;

	for (size_t i = 0; i < c->peek_len; i++) {
		unsigned char b = c->peek[i];

		if (b >= 0x20 && b < 0x7f && b != '\\')
			shown[n++] = (char)b;
		else
			n += (size_t)snprintf(shown + n, sizeof(shown) - n,
					      "\\x%02x", b);
	}
	shown[n] = '\0';
	if (c->peek_len >= 4 && !memcmp(c->peek, "HTTP", 4))
		return srdma__err(SRDMA_ENOT_TLS,
				  "the server at '%s' answered in plain HTTP, "
				  "not TLS (wrong port?)",
				  c->peer_name);
	if (c->peek_len >= 4 &&
	    (!memcmp(c->peek, "GET ", 4) || !memcmp(c->peek, "POST", 4) ||
	     !memcmp(c->peek, "HEAD", 4) || !memcmp(c->peek, "PUT ", 4)))
		return srdma__err(SRDMA_ENOT_TLS,
				  "the peer sent a plain HTTP request, not TLS "
				  "(point it at the right port, using srdma)");
	return srdma__err(SRDMA_ENOT_TLS,
			  "the peer does not speak TLS (its first bytes were "
			  "\"%s\"; is it an srdma %s?)",
			  shown, c->server ? "client" : "server");
}

static bool is_eof_reason(int lib, int reason)
{
	return lib == ERR_LIB_SSL &&
	       reason == SSL_R_UNEXPECTED_EOF_WHILE_READING;
}

/*
 * Maps a failed SSL call to an SRDMA code with a detail; clears the error
 * queue. ssl_err is SSL_get_error()'s verdict, sys_errno the errno after the
 * call.
 */
int srdma__ctrl_tls_failure(struct srdma__ctrl *c, int ssl_err, int sys_errno)
{
	unsigned long e, first = 0;
	int alert = 0, eof = 0, r = 0;
	int ver = 0, missing = 0, http = 0, wrongver = 0, not_record = 0;
	long v = SSL_get_verify_result(c->ssl);
	char why[256], cn[NAME_MAX_LEN];
	const char *file, *func, *data;
	int line, flags;

	while ((e = ERR_get_error_all(&file, &line, &func, &data, &flags))) {
		int lib = ERR_GET_LIB(e);

		r = ERR_GET_REASON(e);
		if (!first)
			first = e;
		if (lib != ERR_LIB_SSL)
			continue;
		if (r >= SSL_AD_REASON_OFFSET && r < SSL_AD_REASON_OFFSET + 256)
			alert = alert ? alert : r;
		else if (r == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE)
			missing = 1;
		else if (r == SSL_R_UNSUPPORTED_PROTOCOL ||
			 r == SSL_R_VERSION_TOO_LOW ||
			 r == SSL_R_NO_PROTOCOLS_AVAILABLE)
			ver = 1;
		else if (r == SSL_R_HTTP_REQUEST ||
			 r == SSL_R_HTTPS_PROXY_REQUEST)
			http = 1;
		else if (r == SSL_R_WRONG_VERSION_NUMBER)
			wrongver = 1;
		else if (r == SSL_R_PACKET_LENGTH_TOO_LONG ||
			 r == SSL_R_LENGTH_TOO_SHORT ||
			 r == SSL_R_BAD_PACKET_LENGTH ||
			 r == SSL_R_UNEXPECTED_RECORD ||
			 r == SSL_R_RECORD_LENGTH_MISMATCH ||
			 r == SSL_R_ENCRYPTED_LENGTH_TOO_LONG)
			not_record = 1;
		if (is_eof_reason(lib, r))
			eof = 1;
	}
	if (first)
		snprintf(why, sizeof(why), "%s",
			 ERR_reason_error_string(first)
				 ? ERR_reason_error_string(first)
				 : "unknown OpenSSL error");
	else
		snprintf(why, sizeof(why), "%s",
			 sys_errno ? strerror(sys_errno) : "end of stream");
	ERR_clear_error();

	/* Our own verification of the peer's chain and name. */
	if (v != X509_V_OK)
		return verify_failure(c, v);
	if (c->server && missing)
		return srdma__err(SRDMA_ECERT_MISSING,
				  "the client sent no certificate (it must "
				  "present one signed by the CA in %s)",
				  c->t->ca_file);
	/* What the peer sent first tells TLS from something else. */
	if (c->got_data && !peek_is_tls(c)) {
		/* an SSLv2-format ClientHello: an ancient TLS client */
		if (c->server && c->peek_len >= 3 && (c->peek[0] & 0x80) &&
		    c->peek[2] == 1)
			return srdma__err(SRDMA_ETLS_VERSION,
					  "the client offered only SSLv2-era "
					  "TLS; it must support TLS 1.3");
		return not_tls(c);
	}
	if (http)
		return not_tls(c);
	if (alert)
		return alert_failure(c, alert);
	if (ver || (wrongver && c->got_data))
		return srdma__err(SRDMA_ETLS_VERSION,
				  "the %s offered only TLS older than 1.3 "
				  "(%s); upgrade it to TLS 1.3",
				  c->server ? "client" : "server", why);
	if (wrongver || not_record)
		return not_tls(c);
	if (eof || (ssl_err == SSL_ERROR_SYSCALL && !first)) {
		if (sys_errno && sys_errno != ECONNRESET && sys_errno != EPIPE)
			return srdma__err(SRDMA_ESYS,
					  "TLS connection failed: %s",
					  strerror(sys_errno));
		if (c->done && !c->server)
			return srdma__err(SRDMA_ECLOSED,
					  "the server closed the connection "
					  "without a word (if this follows "
					  "the handshake, it refused us: is "
					  "'%s' on its allow-list?)",
					  own_cn(c, cn, sizeof(cn)));
		if (c->done)
			return srdma__err(SRDMA_ECLOSED,
					  "the client closed the connection "
					  "without a TLS close");
		/*
		 * A server refuses a certificate with an alert and an
		 * identity after the handshake (error blinding); a close in
		 * the middle of the handshake without an alert means it gave
		 * up on us: busy, shedding idle handshakes, or restarting.
		 * SRDMA_ELIMIT: the session retries with a backoff.
		 */
		if (!c->server)
			return srdma__err(SRDMA_ELIMIT,
					  "the server closed the connection "
					  "%s the TLS handshake without an "
					  "alert: it is busy (at its handshake "
					  "limit, or overloaded); try again "
					  "later",
					  c->got_data ? "in the middle of"
						      : "before starting");
		return srdma__err(SRDMA_ECLOSED,
				  "the client closed the connection during the "
				  "TLS handshake (%s)",
				  c->got_data ? "after a partial TLS record"
					      : "before sending anything");
	}
	if (ssl_err == SSL_ERROR_ZERO_RETURN)
		return srdma__err(SRDMA_ECLOSED, "the %s closed the connection",
				  c->server ? "client" : "server");
	return srdma__err(SRDMA_ETLS, "TLS %s failed: %s",
			  c->done ? "connection" : "handshake", why);
}
