/* SPDX-License-Identifier: MIT */
/* `--config FILE` for the tool's commands (config.h). */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

enum { LINE_MAX_LEN = 4096 };

struct list {
	char **v;
	int n, cap;
};

static int push(struct list *l, const char *s)
{
	if (l->n + 1 >= l->cap) {
		int cap = l->cap ? 2 * l->cap : 16;
		char **v = realloc(l->v, sizeof(*v) * (size_t)cap);

		if (!v)
			return -1;
		l->v = v;
		l->cap = cap;
	}
	if (!(l->v[l->n] = strdup(s)))
		return -1;
	l->v[++l->n] = NULL;
	return 0;
}

static bool in(const char *const *set, const char *s)
{
	for (size_t i = 0; set && set[i]; i++)
		if (!strcmp(set[i], s))
			return true;
	return false;
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static int fail(char *err, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return -1;
}

/* "--" + key */
static int push_opt(struct list *l, const char *key)
{
	char opt[256];

	snprintf(opt, sizeof(opt), "--%s", key);
	return push(l, opt);
}

/* Whether the command line gives option key ("--key"). */
static bool on_cli(int argc, char **argv, const char *key)
{
	for (int i = 1; i < argc; i++)
		if (!strncmp(argv[i], "--", 2) && !strcmp(argv[i] + 2, key))
			return true;
	return false;
}

/* Reads FILE's options into l (as "--key" [value] words). */
static int read_file(const struct config_keys *keys, const char *file, int argc,
		     char **argv, struct list *l, char *err, size_t errlen)
{
	char line[LINE_MAX_LEN];
	FILE *f = fopen(file, "re");
	int no = 0, rc = 0;

	if (!f)
		return fail(err, errlen, "cannot read %s: %s", file,
			    strerror(errno));
	while (rc == 0 && fgets(line, sizeof(line), f)) {
		char *key, *val = NULL, *eq, *hash;
		size_t n = strlen(line);

		no++;
		if (n == sizeof(line) - 1 && line[n - 1] != '\n') {
			rc = fail(err, errlen, "%s:%d: line too long", file,
				  no);
			break;
		}
		/* a comment: '#' at the start or after a blank */
		for (hash = line; (hash = strchr(hash, '#')); hash++)
			if (hash == line || isspace((unsigned char)hash[-1])) {
				*hash = '\0';
				break;
			}
		key = trim(line);
		if (!*key)
			continue;
		if ((eq = strchr(key, '='))) {
			*eq = '\0';
			val = trim(eq + 1);
			key = trim(key);
			n = strlen(val);
			if (n >= 2 && val[0] == '"' && val[n - 1] == '"') {
				val[n - 1] = '\0';
				val++;
			}
		}
		if (!strncmp(key, "--", 2))
			key += 2;
		if (in(keys->repeat, key) && on_cli(argc, argv, key))
			continue; /* the command line's list replaces it */
		if (in(keys->flags, key)) {
			long times = 1;
			char *end;

			if (val && *val) {
				times = strtol(val, &end, 10);
				if (*end) {
					if (!strcmp(val, "yes") ||
					    !strcmp(val, "true"))
						times = 1;
					else if (!strcmp(val, "no") ||
						 !strcmp(val, "false"))
						times = 0;
					else
						times = -1;
				}
			}
			if (times < 0 || times > 8) {
				rc = fail(err, errlen,
					  "%s:%d: '%s' is a flag: give it "
					  "bare, or yes / no",
					  file, no, key);
				break;
			}
			while (rc == 0 && times-- > 0)
				rc = push_opt(l, key);
		} else if (in(keys->valued, key)) {
			if (!val || !*val) {
				rc = fail(err, errlen,
					  "%s:%d: '%s' needs a value (%s = "
					  "VALUE)",
					  file, no, key, key);
				break;
			}
			rc = push_opt(l, key);
			if (rc == 0)
				rc = push(l, val);
		} else {
			rc = fail(err, errlen, "%s:%d: unknown key '%s'", file,
				  no, key);
			break;
		}
		if (rc < 0 && !err[0])
			fail(err, errlen, "out of memory reading %s", file);
	}
	if (rc == 0 && ferror(f))
		rc = fail(err, errlen, "cannot read %s: %s", file,
			  strerror(errno));
	fclose(f);
	return rc;
}

int config_args(const struct config_keys *keys, int argc, char **argv,
		const char **file, struct config_args *out, char *err,
		size_t errlen)
{
	struct list l = {0};
	int at = -1, rc = 0;

	err[0] = '\0';
	*file = NULL;
	out->argc = 0;
	out->argv = NULL;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--config"))
			continue;
		if (i + 1 >= argc)
			return fail(err, errlen, "--config needs a file");
		if (at >= 0)
			return fail(err, errlen, "--config given twice");
		at = i;
		*file = argv[++i];
	}
	rc = push(&l, argv[0]);
	if (rc == 0 && *file)
		rc = read_file(keys, *file, argc, argv, &l, err, errlen);
	for (int i = 1; rc == 0 && i < argc; i++) {
		if (i == at) {
			i++;
			continue;
		}
		rc = push(&l, argv[i]);
	}
	if (rc < 0) {
		if (!err[0])
			fail(err, errlen, "out of memory");
		out->argv = l.v;
		out->argc = l.n;
		config_args_free(out);
		return -1;
	}
	out->argv = l.v;
	out->argc = l.n;
	return 0;
}

void config_args_free(struct config_args *a)
{
	for (int i = 0; a->argv && i < a->argc; i++)
		free(a->argv[i]);
	free(a->argv);
	a->argv = NULL;
	a->argc = 0;
}
