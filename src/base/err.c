/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"

static _Thread_local char detail[512];
/* Where the detail was recorded: __FILE__ (a string literal) and line. */
static _Thread_local const char *where_file;
static _Thread_local int where_line;
static _Thread_local char where[128];

int srdma__err_at(int err, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	where_file = file;
	where_line = line;
	return err;
}

void srdma__err_clear(void)
{
	detail[0] = '\0';
	where_file = NULL;
}

/* __FILE__ is the path the build gave the compiler, often absolute: keep
 * it from the last "src/" on ("src/wire/wire.c"), else the file name. */
static const char *short_path(const char *file)
{
	const char *p = file, *hit = NULL, *slash;

	while ((p = strstr(p, "src/"))) {
		if (p == file || p[-1] == '/')
			hit = p;
		p++;
	}
	if (hit)
		return hit;
	slash = strrchr(file, '/');
	return slash ? slash + 1 : file;
}

const char *srdma__err_where(void)
{
	if (!where_file)
		return "";
	snprintf(where, sizeof(where), "%s:%d", short_path(where_file),
		 where_line);
	return where;
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

/*
 * The codes run from 0 down to SRDMA_ERROR_MIN without gaps (callers check
 * a peer's code against the range): each lies in the range, there are as
 * many as the range holds, and srdma_strerror()'s switch refuses duplicates.
 */
#define IN_RANGE(name, value, sentence)                                        \
	_Static_assert((value) <= 0 && (value) >= SRDMA_ERROR_MIN,             \
		       #name " is outside SRDMA_ERROR_MIN..0");
#define COUNT(name, value, sentence) +1
SRDMA_ERRNO_MAP(IN_RANGE)
_Static_assert(0 SRDMA_ERRNO_MAP(COUNT) == 1 - SRDMA_ERROR_MIN,
	       "SRDMA_ERRNO_MAP has gaps or SRDMA_ERROR_MIN is stale");
#undef COUNT
#undef IN_RANGE

SRDMA_API const char *srdma_strerror(int err)
{
	switch (err) {
#define SENTENCE(name, value, sentence)                                        \
	case name:                                                             \
		return sentence;
		SRDMA_ERRNO_MAP(SENTENCE)
#undef SENTENCE
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
	/* Only where the application asked (srdma.h): a library does not
	 * write on a program's stderr by itself. */
	if (lg && lg->fn)
		lg->fn(lg->arg, level, line);
}

SRDMA_API void srdma_log_stderr(void *arg, int level, const char *line)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};

	(void)arg;
	fprintf(stderr, "srdma: %s: %s\n",
		names[level < 0	  ? 0
		      : level > 3 ? 3
				  : level],
		line);
}
