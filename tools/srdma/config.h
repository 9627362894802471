/* SPDX-License-Identifier: MIT */
/*
 * `--config FILE`: options in a file, one per line, as
 *
 *     # a comment
 *     certs = /etc/srdma/pki
 *     allow = alice
 *     allow = bob
 *     no-resumption
 *
 * Each key is a long option without its "--"; a flag is given bare or as
 * "key = yes|true|1" ("no|false|0" leaves it off). The file's options come
 * first and the command line's after them, so the command line wins; a
 * repeatable option (allow) given on the command line replaces the file's
 * list instead of adding to it.
 */
#ifndef SRDMA_TOOL_CONFIG_H
#define SRDMA_TOOL_CONFIG_H

#include <stddef.h>

/* What a command accepts in a file: its long options, flags apart. */
struct config_keys {
	const char *const *valued; /* NULL-terminated: take a value */
	const char *const *flags;  /* NULL-terminated: take none */
	const char *const *repeat; /* NULL-terminated: may repeat */
};

struct config_args {
	int argc;
	char **argv; /* argv[0] is the command's; owned */
};

/*
 * Builds the argument list: argv[0], FILE's options, then argv[1..] without
 * "--config FILE". FILE is taken from the command line (NULL: none, then
 * out is a copy of argv). 0, or -1 with a one-line reason in err (FILE:LINE:
 * what is wrong).
 */
int config_args(const struct config_keys *keys, int argc, char **argv,
		const char **file, struct config_args *out, char *err,
		size_t errlen);
void config_args_free(struct config_args *a);

#endif
