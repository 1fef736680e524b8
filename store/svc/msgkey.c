/*
 * msgkey.c - mailbox names, message keys and the message hash (msgkey.h).
 * Pure functions, no I/O: linked into storesvc and storectl.
 */
#include <errno.h>
#include <string.h>

#include "msgkey.h"

int mb_name_normalize(const char *in, size_t inlen, char *out)
{
    if (inlen == 0 || inlen > MB_NAME_MAX || in[0] == '.')
        return -EINVAL;
    for (size_t i = 0; i < inlen; i++) {
        char c = in[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
              c == '+' || c == '-'))
            return -EINVAL;
        out[i] = c;
    }
    out[inlen] = '\0';
    return 0;
}

size_t mb_key(const char *name, uint64_t uid, uint8_t *key)
{
    size_t n = strlen(name);
    memcpy(key, name, n);
    key[n] = 0;
    for (int i = 0; i < 8; i++)
        key[n + 1 + i] = (uint8_t)(uid >> (56 - 8 * i));
    return n + 9;
}

int mb_key_parse(const void *key, size_t klen, char *name, uint64_t *uid)
{
    const uint8_t *k = key;
    if (klen < 10 || klen > MB_KEY_MAX || k[klen - 9] != 0)
        return -EINVAL;
    memcpy(name, k, klen - 9);
    name[klen - 9] = '\0';
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u = (u << 8) | k[klen - 8 + i];
    *uid = u;
    return 0;
}

uint64_t mb_uid_floor(const void *row, size_t len)
{
    if (len < 16)
        return 1;
    const uint8_t *p = (const uint8_t *)row + 8;
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v ? v : 1;
}

void mb_put_u64le(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

uint64_t mb_hash(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}
