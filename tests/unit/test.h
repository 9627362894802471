/* SPDX-License-Identifier: MIT */
/* Minimal unit-test harness: CHECK never aborts; main returns failures. */
#ifndef SRDMA_TEST_H
#define SRDMA_TEST_H

#include <stdio.h>
#include <stdlib.h>

static int test_failures;
static int test_checks;

#define CHECK(cond)                                                            \
	do {                                                                   \
		test_checks++;                                                 \
		if (!(cond)) {                                                 \
			test_failures++;                                       \
			fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, \
				__LINE__, #cond);                              \
		}                                                              \
	} while (0)

/* On a mismatch, says detail (evaluated after call). */
#define CHECK_RC_DETAIL(call, want, detail)                                    \
	do {                                                                   \
		int check_rc__ = (call);                                       \
		test_checks++;                                                 \
		if (check_rc__ != (want)) {                                    \
			test_failures++;                                       \
			fprintf(stderr, "%s:%d: %s = %d, want %d (%s)\n",      \
				__FILE__, __LINE__, #call, check_rc__, (want), \
				(detail));                                     \
		}                                                              \
	} while (0)

#define CHECK_RC(call, want) CHECK_RC_DETAIL(call, want, srdma_error_detail())

/* The tool's development PKI (tools/srdma/pki.h) reports through pki_error. */
#define CHECK_PKI(call, want) CHECK_RC_DETAIL(call, want, pki_error())

#define TEST_DONE()                                                            \
	do {                                                                   \
		printf("%d passed, %d failed\n", test_checks - test_failures,  \
		       test_failures);                                         \
		return test_failures ? 1 : 0;                                  \
	} while (0)

#endif
