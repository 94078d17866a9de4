/* mapfmt.c - the mapfile's text, parsed and written (mapfmt.h).
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The parser takes GNU ddrescue's own mapfiles too (no kcopy lines; a
 * status line with or without its pass; positions in hex or decimal) and
 * is strict about everything else: the text is untrusted, and every number
 * in it is checked here for what the format allows and by resume.c
 * against the run.  One pass, linear in the length of the text.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "mapfmt.h"
#include "spec.h"

/* ------------------------------------------------------------ numbers */

/* A number at *s: "0x" and hex digits, or decimal digits; no sign, no
 * blanks.  Moves *s past it.  0 or -EINVAL (none, or it overflows). */
static int take_number(const char **s, uint64_t *v)
{
	const char *p = *s;
	unsigned int base = 10, d;
	uint64_t n = 0;
	bool any = false;

	if (p[0] == '0' && (p[1] == 'x' || p[1] == 'X')) {
		base = 16;
		p += 2;
	}
	for (;; p++, any = true) {
		if (*p >= '0' && *p <= '9')
			d = (unsigned int)(*p - '0');
		else if (base == 16 && *p >= 'a' && *p <= 'f')
			d = (unsigned int)(*p - 'a' + 10);
		else if (base == 16 && *p >= 'A' && *p <= 'F')
			d = (unsigned int)(*p - 'A' + 10);
		else
			break;
		if (n > (UINT64_MAX - d) / base)
			return -EINVAL;
		n = n * base + d;
	}
	if (!any)
		return -EINVAL;
	*s = p;
	*v = n;
	return 0;
}

static const char *skip_blanks(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

/* A whole string as a decimal number. */
static int decimal(const char *s, uint64_t *v)
{
	if (*s < '0' || *s > '9' || take_number(&s, v) < 0)
		return -EINVAL;
	return *s ? -EINVAL : 0;
}

/* ------------------------------------------------------------- paths */

/* The escaped path s, unescaped, or NULL with errno set (EINVAL: a bad
 * escape, a NUL, or nothing). */
static char *unescape(const char *s)
{
	char *out = malloc(strlen(s) + 1), *q = out;
	int hi, lo;

	if (!out)
		return NULL;
	for (; *s; s++) {
		if (*s != '%') {
			*q++ = *s;
			continue;
		}
		hi = kc_hex_digit(s[1]);
		lo = hi < 0 ? -1 : kc_hex_digit(s[2]);
		if (lo < 0 || (hi | lo) == 0)
			break;
		*q++ = (char)(hi << 4 | lo);
		s += 2;
	}
	*q = 0;
	if (*s || q == out) {
		free(out);
		errno = EINVAL;
		return NULL;
	}
	return out;
}

static void write_escaped(FILE *out, const char *p)
{
	const unsigned char *s = (const unsigned char *)p;

	for (; *s; s++) {
		if (*s <= ' ' || *s == '%' || *s >= 0x7f)
			fprintf(out, "%%%02X", *s);
		else
			putc(*s, out);
	}
}

/* ----------------------------------------------------------- comments */

/* "KEY=VALUE" words of a side's line (after its prefix) into side.  The
 * source needs its size; every side its sector, count and path. */
static int parse_side(char *words, struct mapfmt_side *side, bool is_src)
{
	bool has_sector = false, has_count = false;
	char *w, *save = NULL, *v;
	uint64_t n;

	if (side->path)
		return -EINVAL;	/* twice */
	for (w = strtok_r(words, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
		v = strchr(w, '=');
		if (!v)
			return -EINVAL;
		*v++ = 0;
		if (!strcmp(w, "path")) {
			if (side->path)
				return -EINVAL;
			side->path = unescape(v);
			if (!side->path)
				return errno == ENOMEM ? -ENOMEM : -EINVAL;
			continue;
		}
		if (!strcmp(w, "id")) {
			if (side->id[0] || !*v || strlen(v) >= MAPFMT_ID_MAX ||
			    strspn(v, "0123456789abcdefghijklmnopqrstuvwxyz:-")
			    != strlen(v))
				return -EINVAL;
			strcpy(side->id, v);
			continue;
		}
		if (decimal(v, &n) < 0)
			return -EINVAL;
		if (!strcmp(w, "sector") && !has_sector) {
			side->sector = n;
			has_sector = true;
		} else if (!strcmp(w, "count") && !has_count) {
			side->count = n;
			has_count = true;
		} else if (!strcmp(w, "size") && !side->has_size) {
			side->size = n;
			side->has_size = true;
		} else {
			return -EINVAL;	/* unknown, or twice */
		}
	}
	if (!has_sector || !has_count || !side->path ||
	    (is_src && !side->has_size))
		return -EINVAL;
	return 0;
}

static int parse_failed(struct mapfmt *f, char *s)
{
	struct mapfmt_failed *x;
	uint64_t dest, err;
	const char *p = s;
	size_t oplen;
	unsigned int i;

	if (take_number(&p, &dest) < 0 || *p != ' ' || dest < 1 ||
	    dest > f->num_dests)
		return -EINVAL;
	p++;
	oplen = strcspn(p, " ");
	if (oplen == 0 || oplen >= sizeof(x->op) || p[oplen] != ' ')
		return -EINVAL;
	for (i = 0; i < f->num_failed; i++)
		if (f->failed[i].dest == dest - 1)
			return -EINVAL;
	x = &f->failed[f->num_failed];
	memcpy(x->op, p, oplen);
	x->op[oplen] = 0;
	for (i = 0; i < oplen; i++)	/* one word: verify-read */
		if (x->op[i] == '-')
			x->op[i] = ' ';
	p += oplen + 1;
	/* errno, then its text (free). */
	if (take_number(&p, &err) < 0 || (*p && *p != ' ') || err < 1 ||
	    err > 4095)
		return -EINVAL;
	x->dest = (unsigned int)dest - 1;
	x->err = -(int)err;
	f->num_failed++;
	return 0;
}

/* A "# kcopy-..." line (or any other comment).  0, -EINVAL, -ENOMEM. */
static int parse_comment(struct mapfmt *f, char *line, bool *ended)
{
	static const char mark[] = "# kcopy-";
	char *s;
	uint64_t v;
	int r;

	if (strncmp(line, mark, sizeof(mark) - 1))
		return *ended ? -EINVAL : 0;	/* nothing after the end */
	if (*ended)
		return -EINVAL;
	s = line + sizeof(mark) - 1;
	if (!strncmp(s, "mapfile: ", 9)) {
		if (f->kcopy || decimal(s + 9, &v) < 0 || v < 1 ||
		    v > MAPFMT_VERSION)
			return -EINVAL;
		f->kcopy = true;
		f->version = (int)v;
		return 0;
	}
	if (!f->kcopy)
		return -EINVAL;	/* kcopy lines begin with their version */
	if (!strcmp(s, "end")) {
		*ended = true;
		return 0;
	}
	if (!strncmp(s, "source: ", 8))
		return parse_side(s + 8, &f->src, true);
	if (!strncmp(s, "dest: ", 6)) {
		const char *p = s + 6;
		struct mapfmt_side *d;

		if (take_number(&p, &v) < 0 || *p != ' ' ||
		    v != f->num_dests + 1 || v > MAPFMT_MAX_DESTS)
			return -EINVAL;
		d = &f->dests[f->num_dests];
		r = parse_side(s + (p + 1 - s), d, false);
		if (r == 0)
			f->num_dests++;
		else {
			free(d->path);
			*d = (struct mapfmt_side){ 0 };
		}
		return r;
	}
	if (!strncmp(s, "failed: ", 8))
		return parse_failed(f, s + 8);
	return -EINVAL;
}

/* -------------------------------------------------------------- blocks */

/* "POS SIZE STATUS", or with status_line "POS STATUS [PASS]". */
static int parse_block(const char *line, struct rangemap_block *b,
		       bool status_line)
{
	const char *p = skip_blanks(line);
	uint64_t pass;

	if (take_number(&p, &b->pos) < 0 || (*p != ' ' && *p != '\t'))
		return -EINVAL;
	p = skip_blanks(p);
	if (!status_line) {
		if (take_number(&p, &b->size) < 0 ||
		    (*p != ' ' && *p != '\t'))
			return -EINVAL;
		p = skip_blanks(p);
	}
	if (!*p || !strchr(status_line ? "?*/-FG+" : "?*/-+", *p))
		return -EINVAL;
	b->st = *p++;
	if (*p && *p != ' ' && *p != '\t' && *p != '\r')
		return -EINVAL;
	p = skip_blanks(p);
	if (status_line && *p >= '0' && *p <= '9') {
		if (take_number(&p, &pass) < 0)
			return -EINVAL;
		p = skip_blanks(p);
	}
	if (*p == '\r')
		p++;
	return *p ? -EINVAL : 0;
}

static int add_block(struct mapfmt *f, const struct rangemap_block *b)
{
	if (b->size == 0 || b->pos + b->size < b->pos ||
	    (f->n && f->b[f->n - 1].pos + f->b[f->n - 1].size != b->pos))
		return -EINVAL;
	return rangemap_list_add(&f->b, &f->n, &f->cap, b);
}

int mapfmt_parse(char *text, size_t len, struct mapfmt *f,
		 unsigned int *line_no)
{
	char *line, *nl, *end = text + len;
	bool status_seen = false, ended = false;
	struct rangemap_block b;
	int r;

	*line_no = 0;
	if (len == 0 || text[len - 1] != '\n' || memchr(text, 0, len))
		return -EINVAL;
	for (line = text; line < end; line = nl + 1) {
		nl = memchr(line, '\n', (size_t)(end - line));
		*nl = 0;
		++*line_no;
		if (line[0] == '#') {
			r = parse_comment(f, line, &ended);
		} else if (!line[strspn(line, " \t\r")]) {
			r = 0;
		} else if (ended) {
			r = -EINVAL;
		} else {
			r = parse_block(line, &b, !status_seen);
			if (r == 0 && status_seen)
				r = add_block(f, &b);
			status_seen = true;
		}
		if (r < 0)
			return r;
	}
	*line_no = 0;
	if (!status_seen || (f->kcopy && (!ended || !f->src.path)))
		return -EINVAL;
	return 0;
}

void mapfmt_free(struct mapfmt *f)
{
	unsigned int i;

	free(f->src.path);
	for (i = 0; i < f->num_dests; i++)
		free(f->dests[i].path);
	free(f->b);
	*f = (struct mapfmt){ 0 };
}

/* ------------------------------------------------------------- writing */

static void write_side(FILE *out, const struct mapfmt_side *s)
{
	fprintf(out, "sector=%" PRIu64 " count=%" PRIu64, s->sector, s->count);
	if (s->has_size)
		fprintf(out, " size=%" PRIu64, s->size);
	if (s->id[0])
		fprintf(out, " id=%s", s->id);
	fputs(" path=", out);
	write_escaped(out, s->path ? s->path : "?");
	putc('\n', out);
}

static int first_unfinished(uint64_t pos, uint64_t size, char st, void *ctx)
{
	(void)size;
	if (st != '?')
		return 0;
	*(uint64_t *)ctx = pos;
	return 1;
}

static int write_block(uint64_t pos, uint64_t size, char st, void *ctx)
{
	fprintf(ctx, "0x%08" PRIX64 "  0x%08" PRIX64 "  %c\n", pos, size, st);
	return 0;
}

void mapfmt_write(FILE *out, const char *creator, const struct mapfmt *f,
		  const struct rangemap *map)
{
	uint64_t cur = map->end;
	unsigned int i;

	rangemap_walk(map, map->begin, map->end, first_unfinished, &cur);
	fprintf(out, "# Mapfile. Created by %s\n", creator);
	fprintf(out, "# kcopy-mapfile: %d\n", MAPFMT_VERSION);
	fputs("# kcopy-source: ", out);
	write_side(out, &f->src);
	for (i = 0; i < f->num_dests; i++) {
		fprintf(out, "# kcopy-dest: %u ", i + 1);
		write_side(out, &f->dests[i]);
	}
	for (i = 0; i < f->num_failed; i++) {
		const char *c;

		fprintf(out, "# kcopy-failed: %u ", f->failed[i].dest + 1);
		for (c = f->failed[i].op; *c; c++)	/* one word */
			putc(*c == ' ' ? '-' : *c, out);
		fprintf(out, " %d %s\n", -f->failed[i].err,
			strerror(-f->failed[i].err));
	}
	fprintf(out, "# current_pos  current_status  current_pass\n");
	fprintf(out, "0x%08" PRIX64 "     %c               1\n", cur,
		cur < map->end ? '?' : '+');
	fprintf(out, "#      pos        size  status\n");
	rangemap_walk(map, map->begin, map->end, write_block, out);
	fprintf(out, "# kcopy-end\n");
}
