#include "protobuf.h"

#include <stdlib.h>
#include <string.h>

#include "xalloc.h"

enum { WIRE_VARINT = 0, WIRE_LEN = 2 };

static void reserve(struct protobuf *b, size_t n)
{
	if (b->cap - b->len >= n)
		return;
	while (b->cap - b->len < n)
		b->cap = b->cap ? b->cap * 2 : 256;
	b->data = xrealloc(b->data, b->cap);
}

void protobuf_varint(struct protobuf *b, uint64_t v)
{
	reserve(b, 10);
	while (v >= 0x80) {
		b->data[b->len++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	b->data[b->len++] = (uint8_t)v;
}

static void tag(struct protobuf *b, uint32_t field, unsigned int wire)
{
	protobuf_varint(b, (uint64_t)field << 3 | wire);
}

void protobuf_uint(struct protobuf *b, uint32_t field, uint64_t v)
{
	tag(b, field, WIRE_VARINT);
	protobuf_varint(b, v);
}

void protobuf_bytes(struct protobuf *b, uint32_t field, const void *data, size_t len)
{
	tag(b, field, WIRE_LEN);
	protobuf_varint(b, len);
	reserve(b, len);
	if (len > 0)
		memcpy(b->data + b->len, data, len);
	b->len += len;
}

void protobuf_string(struct protobuf *b, uint32_t field, const char *s)
{
	protobuf_bytes(b, field, s, strlen(s));
}

void protobuf_message(struct protobuf *b, uint32_t field, const struct protobuf *m)
{
	protobuf_bytes(b, field, m->data, m->len);
}

static size_t varint_size(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

void protobuf_packed(struct protobuf *b, uint32_t field, const uint64_t *v, size_t n)
{
	size_t len = 0;

	if (n == 0)
		return;
	for (size_t i = 0; i < n; i++)
		len += varint_size(v[i]);
	tag(b, field, WIRE_LEN);
	protobuf_varint(b, len);
	for (size_t i = 0; i < n; i++)
		protobuf_varint(b, v[i]);
}

void protobuf_reset(struct protobuf *b)
{
	b->len = 0;
}

void protobuf_free(struct protobuf *b)
{
	if (b == NULL)
		return;
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}
