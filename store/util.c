/*
 * util.c - small engine helpers: CRC-32C (SSE4.2 when the CPU has it,
 * slicing-by-8 otherwise), ESE's XOR header checksum, LOGTIME and SIGNATURE
 * encoding/printing, LGPOS printing, paths, and whole-buffer I/O through the
 * VFS including the durable file replacement (write tmp, sync, rename, sync
 * dir) that docs/store-format.md 8.4 requires.
 *
 * Invariants: crc32c(crc32c(0, a), b) == crc32c(0, a || b); every function
 * here is thread-safe after the first call (the table is built once).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "storeint.h"

static uint32_t crc_tab[8][256];
static bool crc_hw;
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (unsigned i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
        crc_tab[0][i] = c;
    }
    for (unsigned i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_tab[t][i] = (crc_tab[t - 1][i] >> 8) ^ crc_tab[0][crc_tab[t - 1][i] & 0xff];
#if defined(__x86_64__)
    __builtin_cpu_init();
    crc_hw = __builtin_cpu_supports("sse4.2");
#endif
}

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint32_t crc_sse42(uint32_t c, const uint8_t *p, size_t n)
{
    uint64_t c64 = c;
    while (n >= 8) {
        c64 = __builtin_ia32_crc32di(c64, rd64(p));
        p += 8;
        n -= 8;
    }
    c = (uint32_t)c64;
    while (n--)
        c = __builtin_ia32_crc32qi(c, *p++);
    return c;
}
#endif

uint32_t crc32c(uint32_t crc, const void *buf, size_t n)
{
    pthread_once(&crc_once, crc_init);
    const uint8_t *p = buf;
    uint32_t c = ~crc;
#if defined(__x86_64__)
    if (crc_hw)
        return ~crc_sse42(c, p, n);
#endif
    while (n >= 8) {
        uint32_t lo = rd32(p) ^ c, hi = rd32(p + 4);
        c = crc_tab[7][lo & 0xff] ^ crc_tab[6][(lo >> 8) & 0xff] ^
            crc_tab[5][(lo >> 16) & 0xff] ^ crc_tab[4][lo >> 24] ^
            crc_tab[3][hi & 0xff] ^ crc_tab[2][(hi >> 8) & 0xff] ^
            crc_tab[1][(hi >> 16) & 0xff] ^ crc_tab[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--)
        c = (c >> 8) ^ crc_tab[0][(c ^ *p++) & 0xff];
    return ~c;
}

uint32_t xor_checksum(const void *buf, size_t n)
{
    const uint8_t *p = buf;
    uint32_t x = 0x89ABCDEFu;
    for (size_t i = 4; i + 4 <= n; i += 4)
        x ^= rd32(p + i);
    return x;
}

void logtime_now(uint8_t t[8])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    unsigned ms = (unsigned)(ts.tv_nsec / 1000000);
    t[0] = (uint8_t)tm.tm_sec;
    t[1] = (uint8_t)tm.tm_min;
    t[2] = (uint8_t)tm.tm_hour;
    t[3] = (uint8_t)tm.tm_mday;
    t[4] = (uint8_t)(tm.tm_mon + 1);
    t[5] = (uint8_t)tm.tm_year;
    t[6] = (uint8_t)(1 | ((ms & 0x7f) << 1));
    t[7] = (uint8_t)(ms >> 7);
}

void logtime_format(const uint8_t t[8], char *buf, size_t len)
{
    unsigned ms = (unsigned)(t[6] >> 1) | ((unsigned)t[7] << 7);
    snprintf(buf, len, "%02u/%02u/%04u %02u:%02u:%02u.%03u", t[4], t[3],
             1900u + t[5], t[2], t[1], t[0], ms % 1000);
}

void signature_new(uint8_t s[28])
{
    uint32_t r;
    FILE *f = fopen("/dev/urandom", "rb");
    if (!f || fread(&r, sizeof r, 1, f) != 1)
        r = (uint32_t)mono_us() ^ (uint32_t)getpid() * 2654435761u;
    if (f)
        fclose(f);
    memset(s, 0, 28);
    wr32(s, r);
    logtime_now(s + 4);
    char host[64] = "";
    gethostname(host, sizeof host - 1);
    memcpy(s + 12, host, strnlen(host, 15));
}

void signature_format(const uint8_t s[28], char *buf, size_t len)
{
    char t[40], comp[17];
    logtime_format(s + 4, t, sizeof t);
    memcpy(comp, s + 12, 16);
    comp[16] = 0;
    for (int i = 0; comp[i]; i++)
        if (comp[i] < 32 || comp[i] > 126)
            comp[i] = '?';
    snprintf(buf, len, "Create time:%s Rand:%u Computer:%s", t, rd32(s), comp);
}

void lgpos_format(uint64_t l, char *buf, size_t len)
{
    snprintf(buf, len, "(0x%X,%X,%X)", LGGEN(l), LGOFF(l) / 512, LGOFF(l) % 512);
}

uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

char *path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p)
        return NULL;
    memcpy(p, dir, a);
    size_t o = a;
    if (a && dir[a - 1] != '/')
        p[o++] = '/';
    memcpy(p + o, name, b + 1);
    return p;
}

char *dir_of(const char *path)
{
    const char *s = strrchr(path, '/');
    if (!s)
        return strdup(".");
    if (s == path)
        return strdup("/");
    return strndup(path, (size_t)(s - path));
}

int read_full(store_file *f, void *buf, size_t n, uint64_t off)
{
    uint8_t *p = buf;
    size_t got = 0;
    while (got < n) {
        long r = f->vfs->pread(f, p + got, n - got, off + got);
        if (r < 0)
            return (int)r;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    if (got < n)
        memset(p + got, 0, n - got);
    return (int)(got > (size_t)0x7fffffff ? 0x7fffffff : got);
}

int write_full(store_file *f, const void *buf, size_t n, uint64_t off)
{
    return f->vfs->pwrite(f, buf, n, off);
}

bool is_nospace(int r)
{
    return r == -ENOSPC || r == -EDQUOT;
}

/*
 * Allocates [off, off + n) of f (docs/store-format.md 8.5): the VFS's
 * allocate (fallocate), or, without one, zeros written past the end of the
 * file (bytes already in the file are never overwritten, so a hole inside
 * it stays a hole). -ENOSPC/-EDQUOT when the disk is full; the file may
 * then be partly extended, which is harmless (zero pages).
 */
int file_allocate(store_file *f, uint64_t off, uint64_t n)
{
    const store_vfs *v = f->vfs;
    if (n == 0)
        return 0;
    if (v->allocate) {
        int r = v->allocate(f, off, n);
        if (r != -EOPNOTSUPP && r != -ENOSYS)
            return r;
    }
    uint64_t size;
    int r = v->size(f, &size);
    if (r < 0)
        return r;
    uint64_t from = size > off ? size : off, end = off + n;
    if (from >= end)
        return 0;
    uint8_t *zero = calloc(1, 65536);
    if (!zero)
        return -ENOMEM;
    for (uint64_t o = from; r == 0 && o < end; o += 65536)
        r = write_full(f, zero, end - o < 65536 ? (size_t)(end - o) : 65536, o);
    free(zero);
    return r;
}

int durable_file_replace(const store_vfs *v, const char *path, const void *buf, size_t n)
{
    store_file *f = NULL;
    char *tmp = malloc(strlen(path) + 5), *dir = NULL;
    int r = -ENOMEM;
    if (!tmp)
        goto fail;
    sprintf(tmp, "%s.tmp", path);
    r = v->open(v, tmp, STORE_O_CREAT | STORE_O_TRUNC, &f);
    if (r < 0)
        goto fail;
    r = write_full(f, buf, n, 0);
    /* ENOSPC means "the tmp could not be written, nothing else happened"
     * to the caller (chk.c falls back to an in-place write); a failed sync
     * is another matter whatever its errno, so it is never reported as one */
    if (r == 0 && (r = v->sync(f)) < 0 && is_nospace(r))
        r = -EIO;
    int r2 = v->close(f);
    f = NULL;
    if (r == 0)
        r = is_nospace(r2) ? -EIO : r2;
    if (r < 0) {
        v->unlink(v, tmp);
        goto fail;
    }
    r = v->rename(v, tmp, path);
    if (r < 0) {
        v->unlink(v, tmp);              /* ours; path is as it was (a directory, say) */
        goto fail;
    }
    /* after the rename, ENOSPC can no more mean "nothing happened": the
     * new file may or may not be durable under its name (chk.c would
     * otherwise write it in place and go on), so a failed directory sync
     * is an I/O error whatever its errno, as a failed file sync is */
    dir = dir_of(path);
    r = dir ? v->sync_dir(v, dir) : -ENOMEM;
    if (is_nospace(r))
        r = -EIO;
fail:
    free(tmp);
    free(dir);
    return r;
}
