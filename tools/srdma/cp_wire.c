/* SPDX-License-Identifier: MIT */
/* The messages of srdma cp (cp_wire.h) and small helpers both sides use. */
#include <stdio.h>
#include <string.h>

#include "cp_wire.h"
void cp_put_be(struct cp_msg *m, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--)
		m->buf[m->len + (size_t)i] = (uint8_t)v, v >>= 8;
	m->len += (size_t)n;
}

void cp_put_bytes(struct cp_msg *m, const void *p, size_t n)
{
	memcpy(m->buf + m->len, p, n);
	m->len += n;
}

void cp_msg_start(struct cp_msg *m, enum cp_type type, uint8_t flags)
{
	m->len = 0;
	cp_put_bytes(m, CP_MAGIC, 8);
	cp_put_be(m, type, 1);
	cp_put_be(m, flags, 1);
	cp_put_be(m, 0, 2);
}

uint64_t cp_get_be(struct cp_rd *r, int n)
{
	uint64_t v = 0;

	if (r->left < (size_t)n) {
		r->bad = true;
		return 0;
	}
	for (int i = 0; i < n; i++)
		v = v << 8 | r->p[i];
	r->p += n;
	r->left -= (size_t)n;
	return v;
}

const uint8_t *cp_get_bytes(struct cp_rd *r, size_t n)
{
	const uint8_t *p = r->p;

	if (r->left < n) {
		r->bad = true;
		return NULL;
	}
	r->p += n;
	r->left -= n;
	return p;
}

bool cp_msg_parse(const void *data, size_t len, uint8_t *type, uint8_t *flags,
		  struct cp_rd *body)
{
	const uint8_t *p = data;

	if (len < CP_HDR || memcmp(p, CP_MAGIC, 8))
		return false;
	*type = p[8];
	*flags = p[9];
	body->p = p + CP_HDR;
	body->left = len - CP_HDR;
	body->bad = p[10] || p[11];
	return true;
}

void cp_hex(const uint8_t *d, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

void cp_safe(char *out, size_t cap, const char *in, size_t n)
{
	size_t k = 0;

	for (size_t i = 0; i < n && k + 1 < cap; i++)
		out[k++] = in[i] >= 0x20 && in[i] < 0x7f ? in[i] : '?';
	out[k] = 0;
}

EVP_MD_CTX *cp_sha_new(void)
{
	EVP_MD_CTX *x = EVP_MD_CTX_new();

	if (x && EVP_DigestInit_ex(x, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(x);
		x = NULL;
	}
	return x;
}

int cp_sha_peek(EVP_MD_CTX *x, uint8_t out[CP_SHA])
{
	EVP_MD_CTX *y = EVP_MD_CTX_new();
	unsigned n = 0;
	int ok = y && EVP_MD_CTX_copy_ex(y, x) == 1 &&
		 EVP_DigestFinal_ex(y, out, &n) == 1 && n == CP_SHA;

	EVP_MD_CTX_free(y);
	return ok ? 0 : -1;
}

void cp_human(uint64_t v, char *out, size_t cap)
{
	static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
	double d = (double)v;
	int u = 0;

	while (d >= 1024 && u < 4)
		d /= 1024, u++;
	if (u == 0)
		snprintf(out, cap, "%llu B", (unsigned long long)v);
	else
		snprintf(out, cap, "%.1f %s", d, unit[u]);
}
