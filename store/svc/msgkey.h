/*
 * msgkey.h - the layout of a mailbox database, shared by storesvc and
 * storectl (which reads a recovered copy offline), and the message hash.
 *
 * Tables (docs/storesvc.md):
 *   "mailboxes"  key NAME                  value: u64 creation time (us, LE),
 *                                          then optionally u64 UID floor (LE):
 *                                          no UID below it is handed out again
 *   "messages"   key NAME '\0' UID(u64 BE) value: the message as received
 *                                                 (dot-unstuffed, CRLF lines)
 *   "meta"       same key                  value: u64 received (us), u64 size,
 *                                                 then the envelope sender
 * Keys sort by mailbox then UID, so a mailbox's messages are one range.
 */
#ifndef STORESVC_MSGKEY_H
#define STORESVC_MSGKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MB_NAME_MAX 64
#define MB_KEY_MAX (MB_NAME_MAX + 1 + 8)
#define T_MAILBOXES "mailboxes"
#define T_MESSAGES "messages"
#define T_META "meta"

/* Valid mailbox name: 1..64 of [a-z0-9._+-], not starting with '.'. The
 * text is lowered into out (MB_NAME_MAX + 1). @return 0 or -EINVAL. */
int mb_name_normalize(const char *in, size_t inlen, char *out);
/* Builds the message key; @return its length. */
size_t mb_key(const char *name, uint64_t uid, uint8_t *key);
/* Parses a message key: @return 0 with name (MB_NAME_MAX+1) and uid. */
int mb_key_parse(const void *key, size_t klen, char *name, uint64_t *uid);
/* The UID floor of a "mailboxes" row (1 when the row has none). */
uint64_t mb_uid_floor(const void *row, size_t len);
/* Stores v little-endian in p[0..7]. */
void mb_put_u64le(uint8_t *p, uint64_t v);
/* FNV-1a 64 of the message bytes: the "hash" of storectl's records. */
uint64_t mb_hash(const void *data, size_t len);

#endif
