/* SPDX-License-Identifier: MIT */
/*
 * Internal error handling, in the style of s2n-tls's guard macros: internal
 * functions return 0 or a negative SRDMA_E* code, marked warn_unused_result.
 * srdma__err() records a one-sentence detail (and where it arose) in a
 * thread-local buffer that srdma_error_detail() returns.
 */
#ifndef SRDMA_BASE_ERR_H
#define SRDMA_BASE_ERR_H

#include <stdarg.h>
#include <stddef.h>

#include "srdma.h"

#define SRDMA__WUR	    __attribute__((warn_unused_result))
#define SRDMA__PRINTF(a, b) __attribute__((format(printf, a, b)))

/* Records detail for err; returns err so callers can `return srdma__err(...)`.
 */
int srdma__err_at(int err, const char *file, int line, const char *fmt, ...)
	SRDMA__PRINTF(4, 5);
#define srdma__err(err, ...)                                                   \
	srdma__err_at((err), __FILE__, __LINE__, __VA_ARGS__)
/* Clears the thread's detail (and where it arose). */
void srdma__err_clear(void);
/* Where the thread's detail was recorded, "src/dir/file.c:line" ("" if
 * none); valid until the thread's next srdma__err_where() call. */
const char *srdma__err_where(void);
/* Copies the current thread detail into buf (for async reporting). */
void srdma__err_copy(char *buf, size_t len);

/* Return err (with detail) unless cond holds. */
#define ENSURE(cond, err, ...)                                                 \
	do {                                                                   \
		if (!(cond))                                                   \
			return srdma__err((err), __VA_ARGS__);                 \
	} while (0)

/* Propagate a negative result. */
#define GUARD(call)                                                            \
	do {                                                                   \
		int guard_rc__ = (call);                                       \
		if (guard_rc__ < 0)                                            \
			return guard_rc__;                                     \
	} while (0)

/* Deliberately ignore a result (best-effort calls on error paths). */
#define IGNORE_RESULT(call)                                                    \
	do {                                                                   \
		if ((call) < 0) {                                              \
		}                                                              \
	} while (0)

/* Logging: the context's log callback, or nowhere. */
struct srdma__logger {
	srdma_log_fn fn;
	void *arg;
	int level;
};
void srdma__log(const struct srdma__logger *lg, int level, const char *fmt, ...)
	SRDMA__PRINTF(3, 4);

#endif
