/*
 * fuzz_page.c - fuzz target for the page decoder and the /g tree walker:
 * the input (padded to 32 KiB) becomes the catalog root page (pgno 2) of a
 * minimal database, its checksum fixed up so the structure is what gets
 * tested, then /k and /g run on the file. Built as a libFuzzer target with
 * clang (-DSTORE_LIBFUZZER -fsanitize=fuzzer); the unit suite calls
 * fuzz_page_one() on mutated real pages.
 *
 * Invariant: any input returns; only a temporary file is written.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storeint.h"

int fuzz_page_one(const uint8_t *data, size_t size);

int fuzz_page_one(const uint8_t *data, size_t size)
{
    uint8_t *img = calloc(5, PAGE_SIZE);
    if (!img)
        return 0;
    uint8_t *h = img, *p1 = img + 2 * PAGE_SIZE, *p2 = img + 3 * PAGE_SIZE,
            *p3 = img + 4 * PAGE_SIZE;
    wr32(h + H_MAGIC, DB_MAGIC);
    wr32(h + H_STATE, DBSTATE_CLEAN);
    wr32(h + H_PAGESIZE, PAGE_SIZE);
    wr32(h + H_FILETYPE, 1);
    wr32(h, xor_checksum(h, PAGE_SIZE));
    page_init(p1, 1, 1, PF_SPACE | PF_ROOT, 0);
    wr32(p1 + P_SR_PGNOLAST, 3);
    page_set_checksum(p1, 1);
    memcpy(p2, data, size < PAGE_SIZE ? size : PAGE_SIZE);
    page_decode_check(p2, 2);
    page_verify(p2, 2, NULL);
    wr32(p2 + P_PGNO, 2);
    page_set_checksum(p2, 2);
    page_init(p3, 3, 3, PF_ROOT | PF_LEAF | PF_LV, 0);
    page_set_checksum(p3, 3);
    char path[] = "/tmp/store-fuzz-page-XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0) {
        if (write(fd, img, 5 * PAGE_SIZE) == 5 * PAGE_SIZE) {
            struct store_check_stats st;
            store_check_checksums(NULL, path, &st, NULL, NULL);
            store_check_integrity(NULL, path, &st, NULL, NULL);
        }
        close(fd);
        unlink(path);
    }
    free(img);
    return 0;
}

#ifdef STORE_LIBFUZZER
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_page_one(data, size);
}
#endif
