/* bmap.c - bmaptool's block map (bmap.h): the XML file parsed by libexpat
 * and checked whole, and the walk that applies it to the image's bytes,
 * with the checksums by OpenSSL's libcrypto (EVP).
 *
 * Copyright (C) 2026 The kcopy authors.
 * SPDX-License-Identifier: LGPL-2.1-or-later
 *
 * The file is untrusted (tests/fuzz-bmap.c): a document type (and so any
 * entity) is refused, every element is one the format has where it has
 * it, once, and every number is checked for what the format allows.  The
 * checks are bmaptool's (BmapCopy.py) and the ones it leaves out: ranges
 * in order and within the image, MappedBlocksCount their sum.  One pass
 * over the text, then one over the ranges.
 */

#include <errno.h>
#include <expat.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bmap.h"
#include "spec.h"

/* ------------------------------------------------------------ parsing */

/* The elements of <bmap>, each at most once (the ranges are in
 * <BlockMap>). */
enum field {
	F_IMAGE_SIZE,
	F_BLOCK_SIZE,
	F_BLOCKS,
	F_MAPPED,
	F_SUM_TYPE,
	F_FILE_SUM,		/* BmapFileChecksum */
	F_FILE_SHA1,		/* BmapFileSHA1 (1.3) */
	F_BLOCK_MAP,
	F_NUM
};

static const char *const field_names[F_NUM] = {
	[F_IMAGE_SIZE] = "ImageSize",
	[F_BLOCK_SIZE] = "BlockSize",
	[F_BLOCKS] = "BlocksCount",
	[F_MAPPED] = "MappedBlocksCount",
	[F_SUM_TYPE] = "ChecksumType",
	[F_FILE_SUM] = "BmapFileChecksum",
	[F_FILE_SHA1] = "BmapFileSHA1",
	[F_BLOCK_MAP] = "BlockMap",
};

/* The checksum types taken, as hashlib names them in bmaptool's files. */
static const char *const sum_types[] = {
	"md5", "sha1", "sha224", "sha256", "sha384", "sha512",
};

#define TEXT_MAX 256		/* bytes of an element's text */

struct parse {
	XML_Parser p;
	struct bmap *b;
	struct bmap_error *e;
	int err;			/* the first error, 0 while none */
	unsigned int depth;		/* 1: in <bmap> */
	int leaf;			/* the field whose text is read, or -1;
					   F_NUM: a <Range> */
	char text[TEXT_MAX + 1];
	size_t text_len;
	bool text_long;
	bool seen[F_NUM];
	unsigned int line[F_NUM];	/* of each field's element */
	uint64_t num[F_NUM];		/* the numbers' values */
	char file_sum[2 * BMAP_SUM_MAX + 1];	/* its text, stripped */
	const char *range_attr;		/* "chksum", "sha1" or NULL */
	char range_sum[2 * BMAP_SUM_MAX + 1];
	bool range_has_sum;
	size_t cap;			/* of b->r */
};

static int fail(struct parse *ps, unsigned int line, int err,
		const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Record the first error (the later ones follow from it) and stop. */
static int fail(struct parse *ps, unsigned int line, int err,
		const char *fmt, ...)
{
	va_list ap;

	if (ps->err)
		return ps->err;
	ps->err = err;
	ps->e->line = line;
	va_start(ap, fmt);
	vsnprintf(ps->e->why, sizeof(ps->e->why), fmt, ap);
	va_end(ap);
	if (ps->p)
		XML_StopParser(ps->p, XML_FALSE);
	return err;
}

static unsigned int cur_line(const struct parse *ps)
{
	return (unsigned int)XML_GetCurrentLineNumber(ps->p);
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* s without the blanks around it, in place. */
static char *strip(char *s)
{
	size_t n;

	while (is_blank(*s))
		s++;
	n = strlen(s);
	while (n && is_blank(s[n - 1]))
		s[--n] = '\0';
	return s;
}

/* Decimal digits at *s, no sign; moves *s past them.  0 or -EINVAL (none,
 * or more than 2^63 - 1). */
static int take_decimal(const char **s, uint64_t *v)
{
	const char *p = *s;
	uint64_t n = 0;

	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (n > (INT64_MAX - (uint64_t)(*p - '0')) / 10)
			return -EINVAL;
		n = n * 10 + (uint64_t)(*p - '0');
	}
	*s = p;
	*v = n;
	return 0;
}

/* The digest of len bytes in hex at s (exactly 2 * len digits) into sum:
 * 0 or -EINVAL. */
static int take_hex(const char *s, unsigned int len, unsigned char *sum)
{
	unsigned int i;

	if (strlen(s) != 2 * (size_t)len)
		return -EINVAL;
	for (i = 0; i < len; i++) {
		int hi = kc_hex_digit(s[2 * i]), lo = kc_hex_digit(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		sum[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

static int field_of(const char *name)
{
	int f;

	for (f = 0; f < F_NUM; f++)
		if (!strcmp(field_names[f], name))
			return f;
	return -1;
}

/* Does the format's version have field f? */
static bool version_has(const struct bmap *b, int f)
{
	bool sums2 = b->major > 1 || b->minor >= 4;	/* 1.4 is 2.0 */

	switch (f) {
	case F_SUM_TYPE:
	case F_FILE_SUM:
		return sums2;
	case F_FILE_SHA1:
		return !sums2 && b->minor == 3;
	}
	return true;
}

/* <bmap version="MAJOR.MINOR">: the versions bmaptool 3.x reads. */
static void start_root(struct parse *ps, const char *name, const char **attr)
{
	struct bmap *b = ps->b;
	const char *v = NULL, *s;
	uint64_t major, minor;
	size_t i;

	if (strcmp(name, "bmap")) {
		fail(ps, cur_line(ps), -EINVAL, "the root element is <%.40s>, "
		     "not <bmap>", name);
		return;
	}
	for (i = 0; attr[i]; i += 2)
		if (!strcmp(attr[i], "version"))
			v = attr[i + 1];
	s = v;
	if (!v || take_decimal(&s, &major) < 0 || *s++ != '.' ||
	    take_decimal(&s, &minor) < 0 || *s || major > 1000 ||
	    minor > 1000) {
		fail(ps, cur_line(ps), -EINVAL, "<bmap> has no version=\"MAJOR."
		     "MINOR\" attribute");
		return;
	}
	if (major < 1 || major > 2) {
		fail(ps, cur_line(ps), major ? -ENOTSUP : -EINVAL, "format "
		     "version %.20s: kcopy reads versions 1.0 to 2.x", v);
		return;
	}
	b->major = (unsigned int)major;
	b->minor = (unsigned int)minor;
	ps->range_attr = version_has(b, F_FILE_SUM) ? "chksum"
			 : version_has(b, F_FILE_SHA1) ? "sha1" : NULL;
}

/* <Range chksum="...">: the attribute of the version, no other. */
static void start_range(struct parse *ps, const char **attr)
{
	size_t i;

	ps->range_has_sum = false;
	for (i = 0; attr[i]; i += 2) {
		if (!ps->range_attr || strcmp(attr[i], ps->range_attr)) {
			fail(ps, cur_line(ps), -EINVAL, "<Range> has an "
			     "attribute %.40s, which format %u.%u does not "
			     "have", attr[i], ps->b->major, ps->b->minor);
			return;
		}
		if (strlen(attr[i + 1]) >= sizeof(ps->range_sum)) {
			fail(ps, cur_line(ps), -EINVAL, "<Range>'s %s is "
			     "too long", attr[i]);
			return;
		}
		strcpy(ps->range_sum, attr[i + 1]);
		ps->range_has_sum = true;
	}
}

static void XMLCALL on_start(void *ctx, const char *name, const char **attr)
{
	struct parse *ps = ctx;
	int f;

	if (ps->err)
		return;
	ps->depth++;
	ps->text_len = 0;
	ps->text_long = false;
	if (ps->depth == 1) {
		start_root(ps, name, attr);
		return;
	}
	if (ps->leaf >= 0) {
		fail(ps, cur_line(ps), -EINVAL, "<%.40s> inside <%s>", name,
		     ps->leaf == F_NUM ? "Range" : field_names[ps->leaf]);
		return;
	}
	if (ps->depth == 3) {
		if (strcmp(name, "Range")) {
			fail(ps, cur_line(ps), -EINVAL, "<%.40s> in <BlockMap>"
			     ": it holds only <Range> elements", name);
			return;
		}
		ps->leaf = F_NUM;
		start_range(ps, attr);
		return;
	}
	f = field_of(name);
	if (f < 0 || !version_has(ps->b, f)) {
		fail(ps, cur_line(ps), -EINVAL, "<%.40s>: format %u.%u has no "
		     "such element", name, ps->b->major, ps->b->minor);
		return;
	}
	if (ps->seen[f]) {
		fail(ps, cur_line(ps), -EINVAL, "a second <%s> (the first is "
		     "on line %u)", name, ps->line[f]);
		return;
	}
	if (attr[0]) {
		fail(ps, cur_line(ps), -EINVAL, "<%s> has an attribute %.40s",
		     name, attr[0]);
		return;
	}
	ps->seen[f] = true;
	ps->line[f] = cur_line(ps);
	if (f != F_BLOCK_MAP)
		ps->leaf = f;
}

static void XMLCALL on_text(void *ctx, const char *s, int len)
{
	struct parse *ps = ctx;
	int i;

	if (ps->err)
		return;
	if (ps->leaf < 0) {
		for (i = 0; i < len; i++)
			if (!is_blank(s[i])) {
				fail(ps, cur_line(ps), -EINVAL, "text outside "
				     "the elements that hold it");
				return;
			}
		return;
	}
	if ((size_t)len > TEXT_MAX - ps->text_len) {
		ps->text_long = true;
		return;
	}
	memcpy(ps->text + ps->text_len, s, (size_t)len);
	ps->text_len += (size_t)len;
}

/* "FIRST-LAST" or "N", blanks around the numbers allowed, as bmaptool. */
static void end_range(struct parse *ps, char *text, unsigned int line)
{
	struct bmap *b = ps->b;
	struct bmap_range r = { .line = line };
	const char *s = strip(text);

	if (take_decimal(&s, &r.first) < 0)
		goto bad;
	while (is_blank(*s))
		s++;
	r.last = r.first;
	if (*s == '-') {
		s++;
		while (is_blank(*s))
			s++;
		if (take_decimal(&s, &r.last) < 0)
			goto bad;
	}
	if (*s)
		goto bad;
	if (r.first > r.last) {
		fail(ps, line, -EINVAL, "range %" PRIu64 "-%" PRIu64 ": its "
		     "first block is after its last", r.first, r.last);
		return;
	}
	if (b->num && r.first <= b->r[b->num - 1].last) {
		fail(ps, line, -EINVAL, "range %" PRIu64 "-%" PRIu64 " is not "
		     "after the one before it (which ends at block %" PRIu64
		     ")", r.first, r.last, b->r[b->num - 1].last);
		return;
	}
	if (ps->range_has_sum) {
		char *h = strip(ps->range_sum);
		size_t n = strlen(h);

		/* The length is checked with the type, at the end. */
		if (!n || n % 2 || n > 2 * BMAP_SUM_MAX ||
		    take_hex(h, (unsigned int)n / 2, r.sum) < 0) {
			fail(ps, line, -EINVAL, "range %" PRIu64 "-%" PRIu64
			     ": its checksum is not hexadecimal digits",
			     r.first, r.last);
			return;
		}
		r.has_sum = true;
		r.sum_len = (unsigned int)n / 2;
	}
	if (b->num == ps->cap) {
		size_t cap = ps->cap ? 2 * ps->cap : 64;
		struct bmap_range *n = realloc(b->r, cap * sizeof(*n));

		if (!n) {
			fail(ps, line, -ENOMEM, "no memory for the ranges");
			return;
		}
		b->r = n;
		ps->cap = cap;
	}
	b->r[b->num++] = r;
	return;
bad:
	fail(ps, line, -EINVAL, "range '%.40s': expected FIRST-LAST or a "
	     "block number", strip(text));
}

static void XMLCALL on_end(void *ctx, const char *name)
{
	struct parse *ps = ctx;
	int f = ps->leaf;
	const char *s;
	char *text;

	(void)name;
	if (ps->err)
		return;
	ps->depth--;
	if (f < 0)
		return;
	ps->leaf = -1;
	if (ps->text_long) {
		fail(ps, cur_line(ps), -EINVAL, "<%s>'s text is too long",
		     f == F_NUM ? "Range" : field_names[f]);
		return;
	}
	ps->text[ps->text_len] = '\0';
	text = strip(ps->text);
	if (f == F_NUM) {
		end_range(ps, ps->text, cur_line(ps));
		return;
	}
	if (f == F_SUM_TYPE) {
		snprintf(ps->b->sum_type, sizeof(ps->b->sum_type), "%s", text);
		if (strlen(text) >= sizeof(ps->b->sum_type))
			ps->b->sum_type[0] = '?';	/* unknown */
		return;
	}
	if (f == F_FILE_SUM || f == F_FILE_SHA1) {
		if (strlen(text) >= sizeof(ps->file_sum)) {
			fail(ps, ps->line[f], -EINVAL, "<%s> is too long",
			     field_names[f]);
			return;
		}
		strcpy(ps->file_sum, text);
		return;
	}
	s = text;
	if (take_decimal(&s, &ps->num[f]) < 0 || *s)
		fail(ps, ps->line[f], -EINVAL, "<%s> '%.40s': expected a "
		     "number", field_names[f], text);
}

static void XMLCALL on_doctype(void *ctx, const char *name, const char *sys,
			       const char *pub, int has_internal)
{
	struct parse *ps = ctx;

	(void)name;
	(void)sys;
	(void)pub;
	(void)has_internal;
	fail(ps, cur_line(ps), -EINVAL, "a document type declaration, which "
	     "a bmap file has not");
}

/* The checksum type's digest length, or -ENOTSUP. */
static int check_sum_type(struct parse *ps)
{
	struct bmap *b = ps->b;
	const EVP_MD *md;
	size_t i;

	if (version_has(b, F_FILE_SHA1))
		snprintf(b->sum_type, sizeof(b->sum_type), "sha1");
	if (!version_has(b, F_SUM_TYPE) && !version_has(b, F_FILE_SHA1))
		return 0;	/* no checksums before 1.3 */
	for (i = 0; i < sizeof(sum_types) / sizeof(sum_types[0]); i++)
		if (!strcmp(b->sum_type, sum_types[i]))
			break;
	md = i < sizeof(sum_types) / sizeof(sum_types[0])
	     ? EVP_get_digestbyname(b->sum_type) : NULL;
	if (!md)
		return fail(ps, ps->line[F_SUM_TYPE], -EINVAL, "checksum type "
			    "'%.20s': kcopy knows md5, sha1, sha224, sha256, "
			    "sha384 and sha512", b->sum_type);
	b->sum_len = (unsigned int)EVP_MD_get_size(md);
	return 0;
}

/* The file's own checksum, as bmaptool takes it: of the file with the
 * first appearance of the checksum's text replaced by as many '0'. */
static int check_file_sum(struct parse *ps, const char *text, size_t len)
{
	struct bmap *b = ps->b;
	int f = version_has(b, F_FILE_SHA1) ? F_FILE_SHA1 : F_FILE_SUM;
	unsigned char want[BMAP_SUM_MAX], got[EVP_MAX_MD_SIZE];
	size_t n = strlen(ps->file_sum), at;
	const char *hit = NULL;
	EVP_MD_CTX *ctx;
	unsigned int glen = 0;
	char *copy;
	int ok;

	if (!b->sum_len)
		return 0;
	if (take_hex(ps->file_sum, b->sum_len, want) < 0)
		return fail(ps, ps->line[f], -EINVAL, "<%s> is not %u "
			    "hexadecimal digits (a %s checksum)",
			    field_names[f], 2 * b->sum_len, b->sum_type);
	for (at = 0; at + n <= len; at++)
		if (!memcmp(text + at, ps->file_sum, n)) {
			hit = text + at;
			break;
		}
	if (!hit)
		return fail(ps, ps->line[f], -EINVAL, "<%s>'s text is not in "
			    "the file as it is", field_names[f]);
	copy = malloc(len ? len : 1);
	ctx = EVP_MD_CTX_new();
	if (!copy || !ctx) {
		free(copy);
		EVP_MD_CTX_free(ctx);
		return fail(ps, 0, -ENOMEM, "no memory for its checksum");
	}
	memcpy(copy, text, len);
	memset(copy + (hit - text), '0', n);
	ok = EVP_DigestInit_ex(ctx, EVP_get_digestbyname(b->sum_type),
			       NULL) == 1 &&
	     EVP_DigestUpdate(ctx, copy, len) == 1 &&
	     EVP_DigestFinal_ex(ctx, got, &glen) == 1;
	EVP_MD_CTX_free(ctx);
	free(copy);
	if (!ok || glen != b->sum_len)
		return fail(ps, 0, -EIO, "cannot take its %s checksum",
			    b->sum_type);
	if (memcmp(got, want, b->sum_len))
		return fail(ps, ps->line[f], -EINVAL, "the file's own checksum "
			    "(<%s>) does not match its contents: the file was "
			    "changed or damaged", field_names[f]);
	return 0;
}

/* The elements the version has are there; the checksum type is known. */
static int check_fields(struct parse *ps)
{
	static const int required[] = { F_IMAGE_SIZE, F_BLOCK_SIZE, F_BLOCKS,
					F_MAPPED, F_SUM_TYPE, F_FILE_SUM,
					F_FILE_SHA1, F_BLOCK_MAP };
	struct bmap *b = ps->b;
	size_t i;

	for (i = 0; i < sizeof(required) / sizeof(required[0]); i++)
		if (version_has(b, required[i]) && !ps->seen[required[i]])
			return fail(ps, cur_line(ps), -EINVAL, "no <%s> (format "
				    "%u.%u has it)", field_names[required[i]],
				    b->major, b->minor);
	return check_sum_type(ps);
}

/* The numbers and the ranges, together. */
static int check_numbers(struct parse *ps)
{
	struct bmap *b = ps->b;
	uint64_t blocks, mapped = 0;
	size_t i;

	b->image_size = ps->num[F_IMAGE_SIZE];
	b->block_size = ps->num[F_BLOCK_SIZE];
	b->blocks = ps->num[F_BLOCKS];
	b->mapped_blocks = ps->num[F_MAPPED];
	if (!b->block_size || b->block_size > BMAP_MAX_BLOCK)
		return fail(ps, ps->line[F_BLOCK_SIZE], -EINVAL, "BlockSize "
			    "%" PRIu64 ": expected 1 to %u bytes",
			    b->block_size, BMAP_MAX_BLOCK);
	blocks = b->image_size / b->block_size +
		 !!(b->image_size % b->block_size);
	if (b->blocks != blocks)
		return fail(ps, ps->line[F_BLOCKS], -EINVAL, "BlocksCount %"
			    PRIu64 " is not the image's size in blocks (ImageSize"
			    " %" PRIu64 " / BlockSize %" PRIu64 ": %" PRIu64 ")",
			    b->blocks, b->image_size, b->block_size, blocks);
	for (i = 0; i < b->num; i++) {
		struct bmap_range *r = &b->r[i];
		uint64_t s, e;

		if (r->last >= b->blocks)
			return fail(ps, r->line, -EINVAL, "range %" PRIu64 "-%"
				    PRIu64 " ends past the image's last block "
				    "(%" PRIu64 ")", r->first, r->last,
				    b->blocks - 1);
		if (r->has_sum && r->sum_len != b->sum_len)
			return fail(ps, r->line, -EINVAL, "range %" PRIu64 "-%"
				    PRIu64 ": its checksum is not %u "
				    "hexadecimal digits (a %s checksum)",
				    r->first, r->last, 2 * b->sum_len,
				    b->sum_type);
		mapped += r->last - r->first + 1;
		bmap_range_bytes(b, i, &s, &e);
		b->mapped_bytes += e - s;
	}
	if (mapped != b->mapped_blocks)
		return fail(ps, ps->line[F_MAPPED], -EINVAL, "MappedBlocksCount"
			    " %" PRIu64 " is not the sum of the ranges (%" PRIu64
			    " blocks)", b->mapped_blocks, mapped);
	return 0;
}

int bmap_parse(const char *text, size_t len, struct bmap *b,
	       struct bmap_error *e)
{
	struct parse ps = { .b = b, .e = e, .leaf = -1 };
	size_t done = 0;

	memset(b, 0, sizeof(*b));
	memset(e, 0, sizeof(*e));
	ps.p = XML_ParserCreate("UTF-8");
	if (!ps.p)
		return fail(&ps, 0, -ENOMEM, "no memory for the XML parser");
	XML_SetUserData(ps.p, &ps);
	XML_SetElementHandler(ps.p, on_start, on_end);
	XML_SetCharacterDataHandler(ps.p, on_text);
	XML_SetStartDoctypeDeclHandler(ps.p, on_doctype);
	/* In pieces: expat takes an int length. */
	do {
		size_t n = len - done > (1u << 30) ? 1u << 30 : len - done;
		bool last = done + n == len;

		if (XML_Parse(ps.p, text + done, (int)n, last) ==
		    XML_STATUS_ERROR && !ps.err)
			fail(&ps, cur_line(&ps), -EINVAL, "not well-formed "
			     "XML: %s", XML_ErrorString(XML_GetErrorCode(ps.p)));
		done += n;
	} while (!ps.err && done < len);
	if (!ps.err && !b->major)
		fail(&ps, cur_line(&ps), -EINVAL, "no <bmap> element");
	/* The file's own checksum first: what else is wrong in a file that
	 * was changed is the change. */
	if (!ps.err)
		check_fields(&ps);
	if (!ps.err)
		check_file_sum(&ps, text, len);
	if (!ps.err)
		check_numbers(&ps);
	XML_ParserFree(ps.p);
	return ps.err;
}

void bmap_free(struct bmap *b)
{
	free(b->r);
	b->r = NULL;
	b->num = 0;
}

void bmap_range_bytes(const struct bmap *b, size_t i, uint64_t *start,
		      uint64_t *end)
{
	uint64_t e = (b->r[i].last + 1) * b->block_size;

	*start = b->r[i].first * b->block_size;
	*end = e < b->image_size ? e : b->image_size;
}

/* ------------------------------------------------------- finding one */

int bmap_find_beside(const char *image_path, char **bmap_path)
{
	size_t len = strlen(image_path);
	char *p = malloc(len + sizeof(".bmap"));
	struct stat st;

	*bmap_path = NULL;
	if (!p)
		return -ENOMEM;
	memcpy(p, image_path, len + 1);
	for (;;) {
		char *base = strrchr(p, '/'), *dot;

		memcpy(p + len, ".bmap", sizeof(".bmap"));
		if (stat(p, &st) == 0 && !S_ISDIR(st.st_mode)) {
			*bmap_path = p;
			return 1;
		}
		p[len] = '\0';
		/* os.path.splitext: the last extension of the last name,
		 * its leading dots not one. */
		base = base ? base + 1 : p;
		while (*base == '.')
			base++;
		dot = strrchr(base, '.');
		if (!dot)
			break;
		*dot = '\0';
		len = (size_t)(dot - p);
	}
	free(p);
	return 0;
}

/* ------------------------------------------------------------ walking */

int bmap_walk_start(struct bmap_walk *w, const struct bmap *b)
{
	memset(w, 0, sizeof(*w));
	w->b = b;
	if (!b->sum_len)
		return 0;
	if (!EVP_get_digestbyname(b->sum_type))
		return w->error = -ENOTSUP;
	w->md = EVP_MD_CTX_new();
	return w->md ? 0 : (w->error = -ENOMEM);
}

/* Range next ends at the walk's position: compare its checksum. */
static int end_range_walk(struct bmap_walk *w)
{
	const struct bmap_range *r = &w->b->r[w->next];
	unsigned char got[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	w->in_range = false;
	if (r->has_sum && w->md) {
		if (EVP_DigestFinal_ex(w->md, got, &n) != 1 ||
		    n != w->b->sum_len)
			return w->error = -EIO;
		if (memcmp(got, r->sum, n)) {
			w->bad = w->next;
			return w->error = -EBADMSG;
		}
	}
	w->next++;
	return 0;
}

static int walk(struct bmap_walk *w, uint64_t pos, unsigned char *buf,
		const unsigned char *data, size_t len)
{
	const struct bmap *b = w->b;

	if (w->error)
		return w->error;
	if (pos != w->pos)
		return w->error = -EINVAL;
	if (len > b->image_size - pos)
		return w->error = -EFBIG;
	while (len) {
		const struct bmap_range *r = NULL;
		uint64_t s = b->image_size, e = s;
		size_t n;

		if (w->next < b->num) {
			r = &b->r[w->next];
			bmap_range_bytes(b, w->next, &s, &e);
		}
		if (pos < s) {
			/* Unmapped: zeros. */
			n = s - pos < len ? (size_t)(s - pos) : len;
			if (buf)
				memset(buf, 0, n);
		} else {
			n = e - pos < len ? (size_t)(e - pos) : len;
			if (r->has_sum && w->md) {
				if (!w->in_range &&
				    EVP_DigestInit_ex(w->md,
					EVP_get_digestbyname(b->sum_type),
					NULL) != 1)
					return w->error = -EIO;
				if (EVP_DigestUpdate(w->md, data, n) != 1)
					return w->error = -EIO;
			}
			w->in_range = true;
		}
		pos += n;
		w->pos = pos;
		len -= n;
		data += n;
		if (buf)
			buf += n;
		if (w->next < b->num && pos == e && end_range_walk(w) < 0)
			return w->error;
	}
	return 0;
}

int bmap_walk_check(struct bmap_walk *w, uint64_t pos, const void *buf,
		    size_t len)
{
	return walk(w, pos, NULL, buf, len);
}

int bmap_walk_end(struct bmap_walk *w, uint64_t total)
{
	if (w->error)
		return w->error;
	if (total != w->b->image_size || w->pos != total)
		return w->error = -EINVAL;
	return 0;
}

void bmap_walk_free(struct bmap_walk *w)
{
	EVP_MD_CTX_free(w->md);
	w->md = NULL;
}
