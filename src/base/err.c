/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"

static _Thread_local char detail[512];

int srdma__err_at(int err, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	(void)file;
	(void)line;
	return err;
}

void srdma__err_clear(void)
{
	detail[0] = '\0';
}

void srdma__err_copy(char *buf, size_t len)
{
	if (len == 0)
		return;
	snprintf(buf, len, "%s", detail);
}

SRDMA_API const char *srdma_error_detail(void)
{
	return detail;
}

SRDMA_API const char *srdma_strerror(int err)
{
	switch (err) {
	case SRDMA_OK:
		return "Success.";
	case SRDMA_EINVAL:
		return "An argument is invalid.";
	case SRDMA_ENOMEM:
		return "Out of memory.";
	case SRDMA_ESYS:
		return "A system call failed.";
	case SRDMA_ETIMEDOUT:
		return "The operation timed out.";
	case SRDMA_EAGAIN:
		return "The operation would block; poll and try again.";
	case SRDMA_ECLOSED:
		return "The connection is closed.";
	case SRDMA_EPROTO:
		return "The peer broke the protocol.";
	case SRDMA_EVERSION:
		return "The peer speaks an unsupported protocol version.";
	case SRDMA_ETLS:
		return "The TLS handshake failed.";
	case SRDMA_ETLS_VERSION:
		return "The peer offered a TLS version older than 1.3; only "
		       "TLS 1.3 is accepted.";
	case SRDMA_ENOT_TLS:
		return "The peer does not speak TLS.";
	case SRDMA_ECERT_UNKNOWN_CA:
		return "The peer's certificate is not signed by a trusted CA.";
	case SRDMA_ECERT_EXPIRED:
		return "The peer's certificate has expired.";
	case SRDMA_ECERT_NOT_YET_VALID:
		return "The peer's certificate is not valid yet.";
	case SRDMA_ECERT_NAME:
		return "The peer's certificate does not match the expected "
		       "name.";
	case SRDMA_ECERT_MISSING:
		return "The peer did not present a certificate.";
	case SRDMA_ENOT_ALLOWED:
		return "The peer's identity is not on the allow-list.";
	case SRDMA_EPOLICY:
		return "The protection mode is weaker than the server accepts.";
	case SRDMA_EINTEGRITY:
		return "Data failed authentication: it was tampered with or "
		       "corrupted.";
	case SRDMA_EREPLAY:
		return "A record arrived out of sequence (replayed, dropped or "
		       "reordered).";
	case SRDMA_ETOKEN:
		return "The fabric connect token was missing, wrong, expired "
		       "or already used.";
	case SRDMA_ELIMIT:
		return "A server limit was reached; try again later.";
	case SRDMA_EQUOTA:
		return "The per-client memory quota is exhausted.";
	case SRDMA_ENODEV:
		return "No usable RDMA device or fabric provider.";
	case SRDMA_EFABRIC:
		return "A fabric operation failed.";
	case SRDMA_ECONNREFUSED:
		return "The server refused the connection.";
	case SRDMA_EUNREACHABLE:
		return "The server could not be reached.";
	case SRDMA_EMSGSIZE:
		return "The message is larger than allowed.";
	case SRDMA_ERANGE:
		return "The offset or length is outside the region.";
	case SRDMA_EEXHAUSTED:
		return "A sequence counter is exhausted; reconnect.";
	case SRDMA_EREMOTE_ACCESS:
		return "The peer refused a remote memory access.";
	case SRDMA_ECONFIG:
		return "The configuration is unusable.";
	case SRDMA_ESTATE:
		return "The call is not valid in the connection's current "
		       "state.";
	case SRDMA_ENOTSUP:
		return "Not supported by this transport.";
	case SRDMA_ENOENT:
		return "No such region.";
	case SRDMA_EPEER:
		return "The peer reported an error.";
	case SRDMA_ECERT_REVOKED:
		return "The peer's certificate has been revoked.";
	default:
		return "Unknown error.";
	}
}

void srdma__log(const struct srdma__logger *lg, int level, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int want = lg ? lg->level : SRDMA_LOG_WARN;

	if (level > want)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (lg && lg->fn) {
		lg->fn(lg->arg, level, line);
		return;
	}
	static const char *const names[] = {"error", "warn", "info", "debug"};
	fprintf(stderr, "srdma: %s: %s\n",
		names[level < 0	  ? 0
		      : level > 3 ? 3
				  : level],
		line);
}
