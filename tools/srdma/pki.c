/* SPDX-License-Identifier: MIT */
/*
 * Development PKI for `srdma certs`: a CA, a server certificate and client
 * certificates, all EC P-256, made with OpenSSL's library (no shelling out
 * to openssl(1)). Keys are created 0600 from the first byte on: a key that
 * was world readable for a moment is a leaked key.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "pki.h"

/*
 * The tool's own error reporting (the library's internals are not the
 * tool's to use): a failing function records one sentence and returns -1;
 * pki_error() gives the sentence.
 */
static _Thread_local char last_error[512];

__attribute__((format(printf, 1, 2))) static int fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	return -1;
}

/* Fail with a message unless cond holds. */
#define REQUIRE(cond, ...)                                                     \
	do {                                                                   \
		if (!(cond))                                                   \
			return fail(__VA_ARGS__);                              \
	} while (0)

/* Propagate a failure. */
#define GUARD(call)                                                            \
	do {                                                                   \
		if ((call) < 0)                                                \
			return -1;                                             \
	} while (0)

const char *pki_error(void)
{
	return last_error;
}

enum {
	DEFAULT_DAYS = 825, /* the CA/Browser Forum's old TLS maximum */
	SERIAL_LEN = 16,
	IDENT_MAX = 64,
	MAX_SANS = 64,
};

enum kind { KIND_CA, KIND_SERVER, KIND_CLIENT };

static const char *ossl_why(char *buf, size_t len)
{
	unsigned long e = ERR_peek_last_error();
	const char *r = e ? ERR_reason_error_string(e) : NULL;

	snprintf(buf, len, "%s", r ? r : "unknown OpenSSL error");
	ERR_clear_error();
	return buf;
}

static bool is_ip(const char *s)
{
	unsigned char buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, s, buf) == 1 ||
	       inet_pton(AF_INET6, s, buf) == 1;
}

/* Identities become file names: keep them to a safe alphabet. */
static int check_ident(const char *id)
{
	size_t n = id ? strlen(id) : 0;

	REQUIRE(n > 0 && n <= IDENT_MAX,
		"identity '%s' must be 1 to %d characters", id ? id : "",
		IDENT_MAX);
	REQUIRE(id[0] != '.' && id[0] != '-',
		"identity '%s' must not start with '.' or '-'", id);
	for (size_t i = 0; i < n; i++) {
		char ch = id[i];
		bool ok = (ch >= 'a' && ch <= 'z') ||
			  (ch >= 'A' && ch <= 'Z') ||
			  (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' ||
			  ch == '-' || ch == '@' || ch == '+';

		REQUIRE(ok,
			"identity '%s' may only contain letters, digits and "
			"'._-@+'",
			id);
	}
	return 0;
}

static int check_dns(const char *s)
{
	size_t n = s ? strlen(s) : 0;

	REQUIRE(n > 0 && n < 254, "server name '%s' is empty or too long",
		s ? s : "");
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		bool ok = (ch >= 'a' && ch <= 'z') ||
			  (ch >= 'A' && ch <= 'Z') ||
			  (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' ||
			  (ch == '*' && i == 0 && s[1] == '.');

		REQUIRE(ok,
			"server name '%s' is neither an IP address nor a DNS "
			"name",
			s);
	}
	return 0;
}

static int gen_key(EVP_PKEY **out)
{
	char why[128];

	*out = EVP_EC_gen("P-256");
	if (!*out)
		return fail("cannot generate a P-256 key: %s",
			    ossl_why(why, sizeof(why)));
	return 0;
}

/* RFC 5280 §4.1.2.2: positive, at most 20 octets; unpredictable here. */
static int set_serial(X509 *x)
{
	unsigned char b[SERIAL_LEN];
	BIGNUM *bn;
	int ok;

	if (RAND_bytes(b, sizeof(b)) != 1)
		return fail("no randomness for a serial number");
	b[0] = (unsigned char)((b[0] & 0x7f) | 0x40);
	bn = BN_bin2bn(b, sizeof(b), NULL);
	ok = bn && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x));
	BN_free(bn);
	REQUIRE(ok, "cannot set a certificate serial number");
	return 0;
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	char why[128];
	X509_EXTENSION *e = X509V3_EXT_nconf_nid(NULL, ctx, nid, value);
	int ok = e && X509_add_ext(x, e, -1);

	X509_EXTENSION_free(e);
	if (!ok)
		return fail("cannot add %s '%s': %s", OBJ_nid2sn(nid), value,
			    ossl_why(why, sizeof(why)));
	return 0;
}

static int add_sans(X509 *x, const char *const *names, size_t n)
{
	GENERAL_NAMES *gens = GENERAL_NAMES_new();
	int rc = 0;

	REQUIRE(gens, "out of memory for subjectAltName");
	for (size_t i = 0; i < n && rc == 0; i++) {
		GENERAL_NAME *g = GENERAL_NAME_new();

		if (!g) {
			rc = fail("out of memory for SAN");
			break;
		}
		if (is_ip(names[i])) {
			ASN1_OCTET_STRING *ip = a2i_IPADDRESS(names[i]);

			if (ip)
				GENERAL_NAME_set0_value(g, GEN_IPADD, ip);
			else
				rc = fail("cannot encode IP address '%s'",
					  names[i]);
		} else {
			ASN1_IA5STRING *s = ASN1_IA5STRING_new();

			if (s && ASN1_STRING_set(s, names[i], -1)) {
				GENERAL_NAME_set0_value(g, GEN_DNS, s);
			} else {
				ASN1_IA5STRING_free(s);
				rc = fail("out of memory for SAN '%s'",
					  names[i]);
			}
		}
		if (rc == 0 && !sk_GENERAL_NAME_push(gens, g))
			rc = fail("out of memory for SAN");
		if (rc != 0)
			GENERAL_NAME_free(g);
	}
	if (rc == 0 && n > 0 &&
	    X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, 0) != 1)
		rc = fail("cannot add subjectAltName");
	GENERAL_NAMES_free(gens);
	return rc;
}

struct cert_req {
	enum kind kind;
	const char *cn;
	const char *const *sans;
	size_t n_sans;
	long nb_off; /* notBefore = now + nb_off */
	long na_off; /* notAfter = now + na_off, or now + days if 0 */
	int days;
};

static int make_cert(const struct cert_req *r, EVP_PKEY *key, X509 *ca,
		     EVP_PKEY *ca_key, X509 **out)
{
	char why[128];
	X509V3_CTX v3;
	X509_NAME *name;
	X509 *x = X509_new();
	int rc;

	*out = NULL;
	REQUIRE(x, "out of memory for a certificate");
	if (!X509_set_version(x, X509_VERSION_3) || !X509_set_pubkey(x, key)) {
		rc = fail("cannot build certificate '%s'", r->cn);
		goto out_free_x;
	}
	rc = set_serial(x);
	if (rc < 0)
		goto out_free_x;
	if (!X509_gmtime_adj(X509_getm_notBefore(x), r->nb_off) ||
	    !(r->na_off ? X509_gmtime_adj(X509_getm_notAfter(x), r->na_off)
			: X509_time_adj_ex(X509_getm_notAfter(x), r->days, 0,
					   NULL))) {
		rc = fail("cannot set the validity of certificate '%s'", r->cn);
		goto out_free_x;
	}
	name = X509_get_subject_name(x);
	if (!X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
					(const unsigned char *)r->cn, -1, -1,
					0) ||
	    !X509_set_issuer_name(x, ca ? X509_get_subject_name(ca) : name)) {
		rc = fail("cannot name certificate '%s'", r->cn);
		goto out_free_x;
	}

	X509V3_set_ctx(&v3, ca ? ca : x, x, NULL, NULL, 0);
	if (r->kind == KIND_CA) {
		rc = add_ext(x, &v3, NID_basic_constraints, "critical,CA:TRUE");
		if (rc == 0)
			rc = add_ext(x, &v3, NID_key_usage,
				     "critical,keyCertSign,cRLSign");
		if (rc == 0)
			rc = add_ext(x, &v3, NID_subject_key_identifier,
				     "hash");
	} else {
		rc = add_ext(x, &v3, NID_basic_constraints,
			     "critical,CA:FALSE");
		if (rc == 0)
			rc = add_ext(x, &v3, NID_key_usage,
				     "critical,digitalSignature");
		if (rc == 0)
			rc = add_ext(x, &v3, NID_ext_key_usage,
				     r->kind == KIND_SERVER ? "serverAuth"
							    : "clientAuth");
		if (rc == 0)
			rc = add_ext(x, &v3, NID_subject_key_identifier,
				     "hash");
		if (rc == 0)
			rc = add_ext(x, &v3, NID_authority_key_identifier,
				     "keyid:always");
		if (rc == 0)
			rc = add_sans(x, r->sans, r->n_sans);
	}
	if (rc < 0)
		goto out_free_x;
	if (!X509_sign(x, ca_key ? ca_key : key, EVP_sha256())) {
		rc = fail("cannot sign certificate '%s': %s", r->cn,
			  ossl_why(why, sizeof(why)));
		goto out_free_x;
	}
	*out = x;
	return 0;

out_free_x:
	X509_free(x);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* Files                                                                   */

struct out_file {
	char path[PATH_MAX];
	EVP_PKEY *key; /* exactly one of key, crt and crl */
	X509 *crt;
	X509_CRL *crl;
};

static int join(char *buf, size_t len, const char *dir, const char *name,
		const char *ext)
{
	int n = snprintf(buf, len, "%s/%s%s", dir, name, ext);

	REQUIRE(n > 0 && (size_t)n < len, "path %s/%s%s is too long", dir, name,
		ext);
	return 0;
}

/*
 * Writes one PEM file. Without force: O_EXCL on the final path, so an
 * existing file is never touched. With force: a new file beside it, then
 * rename(2) over the old one, so the target is never half-written and a key
 * never inherits an old file's wider mode.
 */
static int write_file(const struct out_file *f, bool force)
{
	char tmp[PATH_MAX + 16];
	const char *target = f->path;
	mode_t mode = f->key ? 0600 : 0644;
	BIO *bio;
	int fd, ok, e;

	if (force) {
		unsigned char r[4];

		if (RAND_bytes(r, sizeof(r)) != 1)
			return fail("no randomness for a "
				    "temporary file name");
		snprintf(tmp, sizeof(tmp), "%s.%02x%02x%02x%02x.tmp", f->path,
			 r[0], r[1], r[2], r[3]);
		target = tmp;
	}
	fd = open(target, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		  mode);
	if (fd < 0) {
		if (errno == EEXIST && !force)
			return fail("%s exists; use --force to overwrite",
				    f->path);
		return fail("cannot create %s: %s", target, strerror(errno));
	}
	/* The umask may have narrowed a certificate; never widens a key. */
	if (fchmod(fd, mode) < 0)
		goto out_unlink;
	bio = BIO_new_fd(fd, BIO_NOCLOSE);
	if (!bio)
		goto out_unlink;
	ok = f->key ? PEM_write_bio_PrivateKey(bio, f->key, NULL, NULL, 0, NULL,
					       NULL)
	     : f->crl ? PEM_write_bio_X509_CRL(bio, f->crl)
		      : PEM_write_bio_X509(bio, f->crt);
	ok = ok && BIO_flush(bio) == 1;
	BIO_free(bio);
	if (!ok) {
		errno = EIO;
		goto out_unlink;
	}
	if (fsync(fd) < 0)
		goto out_unlink;
	if (close(fd) < 0) {
		fd = -1;
		goto out_unlink;
	}
	fd = -1;
	if (force && rename(tmp, f->path) < 0)
		goto out_unlink;
	return 0;

out_unlink:
	e = errno;
	if (fd >= 0)
		close(fd);
	unlink(target);
	ERR_clear_error();
	return fail("cannot write %s: %s", f->path, strerror(e ? e : EIO));
}

static int ensure_dir(const char *dir)
{
	struct stat st;

	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		return fail("cannot create directory %s: %s", dir,
			    strerror(errno));
	if (stat(dir, &st) < 0)
		return fail("cannot use directory %s: %s", dir,
			    strerror(errno));
	REQUIRE(S_ISDIR(st.st_mode), "%s is not a directory", dir);
	return 0;
}

/* dir without trailing slashes ("/" stays "/"). */
static int clean_dir(char *buf, size_t len, const char *dir)
{
	size_t n;

	REQUIRE(dir && dir[0], "no directory given");
	n = strlen(dir);
	REQUIRE(n < len, "directory name %.40s... is too long", dir);
	memcpy(buf, dir, n + 1);
	while (n > 1 && buf[n - 1] == '/')
		buf[--n] = '\0';
	return 0;
}

static void free_files(struct out_file *f, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		EVP_PKEY_free(f[i].key);
		X509_free(f[i].crt);
	}
	free(f);
}

static bool seen(const char *const *v, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (!strcasecmp(v[i], s))
			return true;
	return false;
}

/* Issues a key + certificate pair into f[0] (key) and f[1] (crt). */
static int issue_pair(const char *dir, const struct cert_req *r, X509 *ca,
		      EVP_PKEY *ca_key, struct out_file *f)
{
	const char *base = r->kind == KIND_CA ? "ca" : r->cn;

	GUARD(join(f[0].path, sizeof(f[0].path), dir, base, ".key"));
	GUARD(join(f[1].path, sizeof(f[1].path), dir, base, ".crt"));
	GUARD(gen_key(&f[0].key));
	return make_cert(r, f[0].key, ca, ca_key, &f[1].crt);
}

static int write_all(struct out_file *f, size_t n, bool force)
{
	/* Keys first: a directory never holds a certificate without its key. */
	for (size_t i = 0; i < n; i++)
		if (f[i].key)
			GUARD(write_file(&f[i], force));
	for (size_t i = 0; i < n; i++)
		if (f[i].crt)
			GUARD(write_file(&f[i], force));
	return 0;
}

int pki_write(const struct pki_opts *o)
{
	static const char *const def_clients[] = {"client", NULL};
	const char *sans[MAX_SANS];
	const char *const *clients;
	char dir[PATH_MAX - 32], host[256];
	size_t n_sans = 0, n_clients = 0, n_files;
	struct out_file *f;
	int days, rc;

	REQUIRE(o, "no PKI options");
	GUARD(clean_dir(dir, sizeof(dir), o->dir));
	REQUIRE(o->days >= 0 && o->days <= 36500,
		"validity of %d days is out of range (1..36500)", o->days);
	days = o->days ? o->days : DEFAULT_DAYS;
	clients = o->clients ? o->clients : def_clients;

	sans[n_sans++] = "localhost";
	sans[n_sans++] = "127.0.0.1";
	sans[n_sans++] = "::1";
	if (gethostname(host, sizeof(host)) == 0) {
		host[sizeof(host) - 1] = '\0';
		if (host[0] && check_dns(host) == 0 &&
		    !seen(sans, n_sans, host))
			sans[n_sans++] = host;
		last_error[0] = '\0';
	}
	for (size_t i = 0; o->server_names && o->server_names[i]; i++) {
		const char *s = o->server_names[i];

		if (!is_ip(s))
			GUARD(check_dns(s));
		if (seen(sans, n_sans, s))
			continue;
		REQUIRE(n_sans < MAX_SANS, "too many server names (at most %d)",
			MAX_SANS);
		sans[n_sans++] = s;
	}
	for (; clients[n_clients]; n_clients++) {
		const char *id = clients[n_clients];

		GUARD(check_ident(id));
		REQUIRE(strcmp(id, "ca") && strcmp(id, "server"),
			"client identity '%s' would overwrite the %s files; "
			"choose another name",
			id, id);
		for (size_t j = 0; j < n_clients; j++)
			REQUIRE(strcmp(clients[j], id),
				"client identity '%s' is given twice", id);
	}

	n_files = 2 * (2 + n_clients);
	f = calloc(n_files, sizeof(*f));
	REQUIRE(f, "out of memory for %zu files", n_files);

	/* Refuse before generating anything, so nothing is half-written. */
	{
		const char *bases[] = {"ca", "server"};

		for (size_t i = 0; i < 2 + n_clients; i++) {
			const char *b = i < 2 ? bases[i] : clients[i - 2];

			rc = join(f[2 * i].path, sizeof(f[0].path), dir, b,
				  ".crt");
			if (rc == 0)
				rc = join(f[2 * i + 1].path, sizeof(f[0].path),
					  dir, b, ".key");
			for (size_t k = 0; rc == 0 && !o->force && k < 2; k++) {
				struct stat st;

				if (lstat(f[2 * i + k].path, &st) == 0)
					rc = fail("%s exists; use --force "
						  "to overwrite",
						  f[2 * i + k].path);
			}
			if (rc < 0)
				goto out_free_files;
		}
	}
	rc = ensure_dir(dir);
	if (rc < 0)
		goto out_free_files;

	{
		struct cert_req ca = {
			.kind = KIND_CA,
			.cn = "srdma dev CA",
			.nb_off = o->not_before_offset_s < 0
					  ? o->not_before_offset_s
					  : 0,
			.days = days,
		};
		struct cert_req leaf = {
			.nb_off = o->not_before_offset_s,
			.na_off = o->not_after_offset_s,
			.days = days,
		};

		rc = issue_pair(dir, &ca, NULL, NULL, &f[0]);
		if (rc < 0)
			goto out_free_files;
		leaf.kind = KIND_SERVER;
		leaf.cn = "server";
		leaf.sans = sans;
		leaf.n_sans = n_sans;
		rc = issue_pair(dir, &leaf, f[1].crt, f[0].key, &f[2]);
		if (rc < 0)
			goto out_free_files;
		leaf.kind = KIND_CLIENT;
		leaf.sans = NULL;
		leaf.n_sans = 0;
		for (size_t i = 0; i < n_clients; i++) {
			leaf.cn = clients[i];
			rc = issue_pair(dir, &leaf, f[1].crt, f[0].key,
					&f[4 + 2 * i]);
			if (rc < 0)
				goto out_free_files;
		}
	}
	rc = write_all(f, n_files, o->force);

out_free_files:
	free_files(f, n_files);
	return rc;
}

static int load_ca(const char *dir, X509 **ca, EVP_PKEY **key)
{
	char path[PATH_MAX], why[128];
	FILE *fp;

	*ca = NULL;
	*key = NULL;
	GUARD(join(path, sizeof(path), dir, "ca", ".crt"));
	fp = fopen(path, "re");
	if (!fp)
		return fail("cannot open %s: %s", path, strerror(errno));
	*ca = PEM_read_X509(fp, NULL, NULL, NULL);
	fclose(fp);
	if (!*ca)
		return fail("no certificate in %s: %s", path,
			    ossl_why(why, sizeof(why)));
	GUARD(join(path, sizeof(path), dir, "ca", ".key"));
	fp = fopen(path, "re");
	if (!fp)
		return fail("cannot open %s: %s", path, strerror(errno));
	*key = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
	fclose(fp);
	if (!*key)
		return fail("no private key in %s: %s", path,
			    ossl_why(why, sizeof(why)));
	REQUIRE(X509_check_private_key(*ca, *key) == 1,
		"the key in %s does not match %s/ca.crt", path, dir);
	return 0;
}

int pki_issue(const char *dir, const char *name, bool server,
	      const char *const *sans, long not_before_offset_s,
	      long not_after_offset_s)
{
	char d[PATH_MAX - 32];
	size_t n_sans = 0;
	struct out_file f[2] = {0};
	X509 *ca = NULL;
	EVP_PKEY *ca_key = NULL;
	struct cert_req r = {
		.kind = server ? KIND_SERVER : KIND_CLIENT,
		.cn = name,
		.sans = sans,
		.nb_off = not_before_offset_s,
		.na_off = not_after_offset_s,
		.days = DEFAULT_DAYS,
	};
	int rc;

	GUARD(clean_dir(d, sizeof(d), dir));
	GUARD(check_ident(name));
	REQUIRE(strcmp(name, "ca"),
		"identity 'ca' would overwrite the CA files");
	while (sans && sans[n_sans]) {
		if (!is_ip(sans[n_sans]))
			GUARD(check_dns(sans[n_sans]));
		n_sans++;
	}
	r.n_sans = n_sans;
	rc = load_ca(d, &ca, &ca_key);
	if (rc < 0)
		goto out_free_ca;
	rc = issue_pair(d, &r, ca, ca_key, f);
	if (rc == 0)
		rc = write_all(f, 2, true);
	EVP_PKEY_free(f[0].key);
	X509_free(f[1].crt);
out_free_ca:
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	return rc;
}

/* The serial number of DIR/NAME.crt, for a CRL entry. */
static int read_serial(const char *dir, const char *name, ASN1_INTEGER **out)
{
	char path[PATH_MAX], why[128];
	FILE *fp;
	X509 *x;

	*out = NULL;
	GUARD(check_ident(name));
	GUARD(join(path, sizeof(path), dir, name, ".crt"));
	fp = fopen(path, "re");
	if (!fp)
		return fail("cannot open %s: %s", path, strerror(errno));
	x = PEM_read_X509(fp, NULL, NULL, NULL);
	fclose(fp);
	if (!x)
		return fail("no certificate in %s: %s", path,
			    ossl_why(why, sizeof(why)));
	*out = ASN1_INTEGER_dup(X509_get0_serialNumber(x));
	X509_free(x);
	REQUIRE(*out, "out of memory for a serial number");
	return 0;
}

int pki_crl(const char *dir, const char *out, const char *const *revoke,
	    long last_update_offset_s, long next_update_offset_s)
{
	char d[PATH_MAX - 32], why[128];
	struct out_file f = {0};
	X509 *ca = NULL;
	EVP_PKEY *ca_key = NULL;
	ASN1_TIME *t = NULL;
	X509_CRL *crl = NULL;
	int rc;

	GUARD(clean_dir(d, sizeof(d), dir));
	REQUIRE(out && strlen(out) < sizeof(f.path),
		"no or too long a CRL path");
	snprintf(f.path, sizeof(f.path), "%s", out);
	rc = load_ca(d, &ca, &ca_key);
	if (rc < 0)
		goto out_free;
	crl = X509_CRL_new();
	t = ASN1_TIME_new();
	if (!crl || !t || !X509_CRL_set_version(crl, 1) ||
	    !X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca))) {
		rc = fail("cannot build a CRL");
		goto out_free;
	}
	if (!X509_gmtime_adj(t, last_update_offset_s) ||
	    !X509_CRL_set1_lastUpdate(crl, t) ||
	    !X509_gmtime_adj(t, next_update_offset_s ? next_update_offset_s
						     : 7L * 24 * 3600) ||
	    !X509_CRL_set1_nextUpdate(crl, t)) {
		rc = fail("cannot date the CRL");
		goto out_free;
	}
	for (size_t i = 0; revoke && revoke[i]; i++) {
		X509_REVOKED *r = X509_REVOKED_new();
		ASN1_INTEGER *serial = NULL;

		rc = r ? read_serial(d, revoke[i], &serial)
		       : fail("out of memory");
		if (rc == 0 && (!X509_gmtime_adj(t, last_update_offset_s) ||
				!X509_REVOKED_set_serialNumber(r, serial) ||
				!X509_REVOKED_set_revocationDate(r, t) ||
				!X509_CRL_add0_revoked(crl, r)))
			rc = fail("cannot add '%s' to the CRL", revoke[i]);
		else if (rc == 0)
			r = NULL; /* the CRL owns it */
		ASN1_INTEGER_free(serial);
		X509_REVOKED_free(r);
		if (rc < 0)
			goto out_free;
	}
	if (!X509_CRL_sort(crl) || !X509_CRL_sign(crl, ca_key, EVP_sha256())) {
		rc = fail("cannot sign the CRL: %s",
			  ossl_why(why, sizeof(why)));
		goto out_free;
	}
	f.crl = crl;
	rc = write_file(&f, true);
out_free:
	X509_CRL_free(crl);
	ASN1_TIME_free(t);
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	return rc;
}
