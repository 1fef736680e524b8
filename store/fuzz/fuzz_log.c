/*
 * fuzz_log.c - fuzz target for the log decoders and soft recovery: the
 * input is decoded as a log header and record stream (every PAGE payload
 * applied to a scratch page), then written as E00.log of an empty
 * directory and recovered (databases relocated into that directory and
 * ignored when missing). Built as a libFuzzer target with clang
 * (-DSTORE_LIBFUZZER -fsanitize=fuzzer); the unit suite calls
 * fuzz_log_one() on mutated real logs.
 *
 * Invariant: any input returns; nothing outside the temporary directory
 * is written.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storeint.h"

int fuzz_log_one(const uint8_t *data, size_t size);

int fuzz_log_one(const uint8_t *data, size_t size)
{
    struct log_hdr h;
    if (log_hdr_decode(data, size, &h) < 0)
        h.gen = 1, memset(h.sign_log, 0, 28);
    uint8_t *scratch = calloc(1, PAGE_SIZE);
    if (!scratch)
        return 0;
    struct rec_iter it;
    const uint8_t *rec;
    uint32_t rl;
    rec_iter_init(&it, data, size > 0xffffffffu ? 0xffffffffu : (uint32_t)size,
                  log_seed(h.sign_log, h.gen));
    while (rec_iter_next(&it, &rec, &rl) == 1)
        if (rec[8] == REC_PAGE && rl >= REC_HDR + 26)
            page_diff_apply(scratch, rec + REC_HDR + 26, rl - REC_HDR - 26,
                            rd16(rec + REC_HDR + 24));
    free(scratch);
    if (size < LOG_HDR || size > (4u << 20) || size != h.log_size)
        return 0;
    char dir[] = "/tmp/store-fuzz-XXXXXX";
    if (!mkdtemp(dir))
        return 0;
    char path[64];
    snprintf(path, sizeof path, "%s/E00.log", dir);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(data, 1, size, f);
        fclose(f);
        struct store_params p = { .base = "E00", .log_dir = dir, .db_dir = dir,
                                  .flags = STORE_IGNORE_MISSING | STORE_NO_TMP_AHEAD };
        store_inst *in;
        if (store_open(&p, &in) == 0)
            store_close(in);
    }
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        return 0;
    return 0;
}

#ifdef STORE_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_log_one(data, size);
}
#endif
