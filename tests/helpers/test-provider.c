/*
 * test-provider.c - a provider module for the test suite and benchmarks
 * (loaded by vssd through `provider_modules`). It is real, not a mock:
 * in "copy" mode it copies the frozen block device into an image file
 * with O_DIRECT inside the hold window (so the shadow is exactly the
 * point-in-time content), and exposes it through a read-only loop device
 * mounted ro,nosuid,nodev. In "noop" mode it keeps nothing (for measuring
 * coordination overhead).
 *
 * It misbehaves on request, read from the file named by the environment
 * variable VSS_TEST_PROVIDER_CTL at every call, lines of key=value:
 *   mode=copy|noop     fail=PHASE[,PHASE]    stall=PHASE:MS    unsupported=1
 *   unshare=MS
 * PHASE is one of support, pre_commit, settle, commit, post_commit, delete,
 * expose, storage. A storage stall comes after the measurement, as with a slow
 * extent walk, whose answer is out of date by the time it arrives.
 *
 * unshare_step does nothing and says so (0), unless unshare=MS: then each
 * step takes MS ms and says that more is left (1), like a provider with
 * much to copy, and it appends "step START END" to <control file>.unshare
 * (CLOCK_MONOTONIC, microseconds), and pre_commit, commit and post_commit
 * append "PHASE START END", so that a test can check that no step runs
 * while a shadow set is flushed and held (daemon/unshare.c).
 *
 * storage_query: used = the allocated bytes of the images of the volume's
 * shadows (each copy is whole), found through a sidecar <shadow-id>.vol
 * that names the volume's mount point; available = free space of the
 * directory they are in (before any copy: of the control file's). It may
 * run on vssd's query worker, so the state directory it learns at commit
 * is behind a mutex; the directory is also kept in <control file>.statedir
 * for the queries of a restarted vssd.
 *
 * Invariants: a shadow's files are STATE_DIR/<shadow-id>.img and .vol and
 * nothing else; delete removes them whatever stage the shadow reached; images are
 * only for block devices up to 1 GiB, so the hold stays short in tests.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <linux/loop.h>
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <vss/provider.h>

#define MAX_DEV_BYTES (1ull << 30)

struct ctl {
    bool noop;
    char fail[256];
    char stall_phase[32];
    unsigned stall_ms;
    bool unsupported;
    unsigned unshare_ms;
};

static void read_ctl(struct ctl *c)
{
    memset(c, 0, sizeof *c);
    const char *path = getenv("VSS_TEST_PROVIDER_CTL");
    FILE *f = path ? fopen(path, "re") : NULL;
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (!strcmp(line, "mode=noop"))
            c->noop = true;
        else if (!strncmp(line, "fail=", 5))
            snprintf(c->fail, sizeof c->fail, ",%s,", line + 5);
        else if (!strncmp(line, "stall=", 6)) {
            char *colon = strchr(line + 6, ':');
            if (colon) {
                *colon = '\0';
                snprintf(c->stall_phase, sizeof c->stall_phase, "%s", line + 6);
                c->stall_ms = (unsigned)atoi(colon + 1);
            }
        } else if (!strcmp(line, "unsupported=1"))
            c->unsupported = true;
        else if (!strncmp(line, "unshare=", 8))
            c->unshare_ms = (unsigned)atoi(line + 8);
    }
    fclose(f);
}

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Applies fail/stall for a phase. @return 0 or -EIO (with the message). */
static int misbehave(const struct ctl *c, const char *phase, char *err, size_t errlen)
{
    if (c->stall_ms && !strcmp(c->stall_phase, phase))
        sleep_ms(c->stall_ms);
    char key[40];
    snprintf(key, sizeof key, ",%s,", phase);
    if (strstr(c->fail, key)) {
        snprintf(err, errlen, "test provider told to fail at %s", phase);
        return -EIO;
    }
    return 0;
}

/* With unshare=MS: appends "WHAT START END" to <control file>.unshare. */
static void phase_log(const struct ctl *c, const char *what, uint64_t start, uint64_t end)
{
    const char *ctl = getenv("VSS_TEST_PROVIDER_CTL");
    char path[PATH_MAX], line[128];
    if (!c->unshare_ms || !ctl || (size_t)snprintf(path, sizeof path, "%s.unshare", ctl) >= sizeof path)
        return;
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0)
        return;
    int n = snprintf(line, sizeof line, "%s %llu %llu\n", what, (unsigned long long)start,
                     (unsigned long long)end);
    if (write(fd, line, (size_t)n) != n) { /* a test that needs the line fails without it */
    }
    close(fd);
}

static int tp_unshare_step(const struct vss_volume_info *vol, void **state, uint64_t chunk,
                           uint64_t min_free, unsigned budget_ms, char *err, size_t errlen)
{
    (void)vol, (void)state, (void)chunk, (void)min_free, (void)budget_ms, (void)err, (void)errlen;
    struct ctl c;
    read_ctl(&c);
    if (!c.unshare_ms)
        return 0;
    uint64_t t0 = mono_us();
    sleep_ms(c.unshare_ms);
    phase_log(&c, "step", t0, mono_us());
    return 1;
}

static void tp_unshare_free(void *state)
{
    (void)state;
}

static pthread_mutex_t sd_mu = PTHREAD_MUTEX_INITIALIZER;
static char known_state_dir[PATH_MAX]; /* learnt at commit, for storage_query */

static void image_path(const struct vss_provider_shadow *sh, char *buf, size_t len)
{
    char id[VSS_ID_STRLEN];
    vss_id_format(&sh->shadow_id, id);
    snprintf(buf, len, "%s/%s.img", sh->state_dir, id);
}

static void sidecar_path(const struct vss_provider_shadow *sh, char *buf, size_t len)
{
    char id[VSS_ID_STRLEN];
    vss_id_format(&sh->shadow_id, id);
    snprintf(buf, len, "%s/%s.vol", sh->state_dir, id);
}

static int tp_is_supported(const struct vss_volume_info *vol, char *err, size_t errlen)
{
    struct ctl c;
    read_ctl(&c);
    if (c.unsupported) {
        snprintf(err, errlen, "test provider told to support nothing");
        return 0;
    }
    if (misbehave(&c, "support", err, errlen) < 0)
        return -EIO;
    if (c.noop)
        return 1;
    struct stat st;
    if (strncmp(vol->source, "/dev/", 5) != 0 || stat(vol->source, &st) < 0 ||
        !S_ISBLK(st.st_mode)) {
        snprintf(err, errlen, "not on a block device");
        return 0;
    }
    int fd = open(vol->source, O_RDONLY | O_CLOEXEC);
    uint64_t size = 0;
    if (fd < 0 || ioctl(fd, BLKGETSIZE64, &size) < 0 || size > MAX_DEV_BYTES) {
        if (fd >= 0)
            close(fd);
        snprintf(err, errlen, "device larger than 1 GiB");
        return 0;
    }
    close(fd);
    return 1;
}

static int tp_pre_commit(struct vss_provider_shadow *sh)
{
    struct ctl c;
    read_ctl(&c);
    uint64_t t0 = mono_us();
    int r = misbehave(&c, "pre_commit", sh->error, sizeof sh->error);
    phase_log(&c, "pre_commit", t0, mono_us());
    return r;
}

/* commit: the frozen device into the shadow's image. */
static int copy_device(const struct ctl *c, struct vss_provider_shadow *sh)
{
    int r = misbehave(c, "commit", sh->error, sizeof sh->error);
    if (r < 0 || c->noop) {
        snprintf(sh->data, sizeof sh->data, "%s", c->noop ? "noop" : "");
        return r;
    }
    char path[PATH_MAX];
    image_path(sh, path, sizeof path);
    int in = open(sh->volume->source, O_RDONLY | O_DIRECT | O_CLOEXEC);
    int out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    void *buf = NULL;
    r = 0;
    if (in < 0 || out < 0 || posix_memalign(&buf, 4096, 1 << 20) != 0) {
        r = -errno;
        snprintf(sh->error, sizeof sh->error, "cannot copy '%s' to '%s': %s",
                 sh->volume->source, path, strerror(errno));
        goto out;
    }
    for (;;) {
        ssize_t n = read(in, buf, 1 << 20);
        if (n < 0) {
            r = -errno;
            snprintf(sh->error, sizeof sh->error, "read '%s': %s", sh->volume->source,
                     strerror(errno));
            break;
        }
        if (n == 0)
            break;
        if (write(out, buf, (size_t)n) != n) {
            r = -EIO;
            snprintf(sh->error, sizeof sh->error, "write '%s' failed", path);
            break;
        }
    }
    if (r == 0 && fsync(out) < 0)
        r = -errno;
    if (r == 0) {
        char side[PATH_MAX];
        sidecar_path(sh, side, sizeof side);
        FILE *f = fopen(side, "we");
        if (!f || fprintf(f, "%s\n", sh->volume->mountpoint) < 0 || fclose(f) != 0)
            r = -EIO;
        pthread_mutex_lock(&sd_mu);
        snprintf(known_state_dir, sizeof known_state_dir, "%s", sh->state_dir);
        pthread_mutex_unlock(&sd_mu);
        const char *ctl = getenv("VSS_TEST_PROVIDER_CTL");
        char keep[PATH_MAX];
        if (ctl && (size_t)snprintf(keep, sizeof keep, "%s.statedir", ctl) < sizeof keep) {
            FILE *k = fopen(keep, "we");
            if (k) {
                fprintf(k, "%s\n", sh->state_dir);
                fclose(k);
            }
        }
    }
    snprintf(sh->device, sizeof sh->device, "%s", path);
    snprintf(sh->data, sizeof sh->data, "copy");
out:
    free(buf);
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    return r;
}

static int tp_commit(struct vss_provider_shadow *sh)
{
    struct ctl c;
    read_ctl(&c);
    uint64_t t0 = mono_us();
    int r = copy_device(&c, sh);
    phase_log(&c, "commit", t0, mono_us());
    return r;
}

/* settle (vssd's flush thread, before the writers' Freeze): only the
 * misbehaviour asked for, e.g. stall=settle:MS for a long prepare flush */
static int tp_settle(struct vss_provider_shadow *sh)
{
    struct ctl c;
    read_ctl(&c);
    return misbehave(&c, "settle", sh->error, sizeof sh->error);
}

static int tp_post_commit(struct vss_provider_shadow *sh)
{
    struct ctl c;
    read_ctl(&c);
    uint64_t t0 = mono_us();
    int r = misbehave(&c, "post_commit", sh->error, sizeof sh->error);
    phase_log(&c, "post_commit", t0, mono_us());
    return r;
}

static int tp_delete(struct vss_provider_shadow *sh)
{
    struct ctl c;
    read_ctl(&c);
    int r = misbehave(&c, "delete", sh->error, sizeof sh->error);
    if (r < 0)
        return r;
    char path[PATH_MAX];
    sidecar_path(sh, path, sizeof path);
    unlink(path);
    image_path(sh, path, sizeof path);
    if (unlink(path) < 0 && errno != ENOENT) {
        snprintf(sh->error, sizeof sh->error, "unlink '%s': %s", path, strerror(errno));
        return -errno;
    }
    return 0;
}

static int tp_expose(struct vss_provider_shadow *sh, const char *target)
{
    struct ctl c;
    read_ctl(&c);
    int r = misbehave(&c, "expose", sh->error, sizeof sh->error);
    if (r < 0)
        return r;
    if (strcmp(sh->data, "copy") != 0) {
        snprintf(sh->error, sizeof sh->error, "a no-op shadow has no content to expose");
        return -EOPNOTSUPP;
    }
    char path[PATH_MAX];
    image_path(sh, path, sizeof path);
    int ffd = open(path, O_RDONLY | O_CLOEXEC);
    int ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
    if (ffd < 0 || ctl < 0) {
        r = -errno;
        snprintf(sh->error, sizeof sh->error, "cannot open the image or loop-control: %s",
                 strerror(errno));
        goto out;
    }
    for (int attempt = 0; attempt < 16; attempt++) {
        int n = ioctl(ctl, LOOP_CTL_GET_FREE);
        if (n < 0) {
            r = -errno;
            break;
        }
        char dev[32];
        snprintf(dev, sizeof dev, "/dev/loop%d", n);
        int lfd = open(dev, O_RDONLY | O_CLOEXEC);
        if (lfd < 0) {
            r = -errno;
            continue;
        }
        struct loop_config cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.fd = (unsigned)ffd;
        cfg.info.lo_flags = LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR;
        if (ioctl(lfd, LOOP_CONFIGURE, &cfg) < 0) {
            r = -errno;
            close(lfd);
            if (r == -EBUSY)
                continue;
            break;
        }
        const char *fstype = sh->volume->fstype;
        const char *opts = !strcmp(fstype, "xfs") ? "norecovery,nouuid"
                           : !strncmp(fstype, "ext", 3) ? "noload" : "";
        r = mount(dev, target, fstype, MS_RDONLY | MS_NOSUID | MS_NODEV, opts);
        if (r < 0)
            r = -errno;
        close(lfd); /* autoclear: the loop goes away with the mount */
        if (r < 0)
            snprintf(sh->error, sizeof sh->error, "mount %s on '%s': %s", dev, target,
                     strerror(-r));
        break;
    }
out:
    if (ffd >= 0)
        close(ffd);
    if (ctl >= 0)
        close(ctl);
    return r;
}

static int tp_unexpose(struct vss_provider_shadow *sh, const char *target)
{
    if (umount2(target, 0) < 0 && errno != EINVAL && errno != ENOENT) {
        snprintf(sh->error, sizeof sh->error, "umount '%s': %s", target, strerror(errno));
        return -errno;
    }
    return 0;
}

static int tp_storage_query(const struct vss_volume_info *vol, uint64_t *used,
                            uint64_t *allocated, uint64_t *available, char *err, size_t len)
{
    struct ctl c;
    read_ctl(&c);
    *used = *allocated = *available = 0;
    char dir[PATH_MAX];
    pthread_mutex_lock(&sd_mu);
    snprintf(dir, sizeof dir, "%s", known_state_dir);
    pthread_mutex_unlock(&sd_mu);
    const char *ctl = getenv("VSS_TEST_PROVIDER_CTL");
    char keep[PATH_MAX];
    if (!dir[0] && ctl && (size_t)snprintf(keep, sizeof keep, "%s.statedir", ctl) < sizeof keep) {
        FILE *k = fopen(keep, "re");
        if (k) {
            if (fgets(dir, sizeof dir, k))
                dir[strcspn(dir, "\n")] = '\0';
            fclose(k);
        }
    }
    /* No copy made yet (mode=noop): nothing used, on the control file's filesystem. */
    char where[PATH_MAX];
    snprintf(where, sizeof where, "%s", dir[0] ? dir : ctl ? ctl : "/");
    if (!dir[0] && ctl && strrchr(where, '/'))
        *strrchr(where, '/') = '\0';
    struct statvfs sv;
    if (statvfs(where[0] ? where : "/", &sv) == 0)
        *available = (uint64_t)sv.f_bavail * sv.f_frsize;
    DIR *d = dir[0] ? opendir(dir) : NULL;
    struct dirent *de;
    while (d && (de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n < 5 || strcmp(de->d_name + n - 4, ".vol") != 0)
            continue;
        char line[PATH_MAX] = "";
        int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC);
        ssize_t got = fd >= 0 ? read(fd, line, sizeof line - 1) : -1;
        if (fd >= 0)
            close(fd);
        if (got <= 0)
            continue;
        line[got] = '\0';
        line[strcspn(line, "\n")] = '\0';
        if (strcmp(line, vol->mountpoint) != 0)
            continue;
        char img[NAME_MAX + 1];
        snprintf(img, sizeof img, "%.*s.img", (int)(n - 4), de->d_name);
        struct stat st;
        if (fstatat(dirfd(d), img, &st, 0) == 0)
            *used += (uint64_t)st.st_blocks * 512;
    }
    if (d)
        closedir(d);
    *allocated = *used;
    return misbehave(&c, "storage", err, len);
}

static const struct vss_provider tp = {
    .struct_size = sizeof(struct vss_provider),
    .api_version = VSS_PROVIDER_API_VERSION,
    .name = "vss test provider",
    .id = "{7e571e57-0000-4000-8000-7e5700000001}",
    .version = "1.0",
    .type = VSS_PROV_SOFTWARE,
    .is_supported = tp_is_supported,
    .pre_commit = tp_pre_commit,
    .commit = tp_commit,
    .post_commit = tp_post_commit,
    .delete_shadow = tp_delete,
    .expose = tp_expose,
    .unexpose = tp_unexpose,
    .storage_query = tp_storage_query,
    .unshare_step = tp_unshare_step,
    .unshare_free = tp_unshare_free,
    .settle = tp_settle,
};

__attribute__((visibility("default"))) const struct vss_provider *vss_provider_init(void);
const struct vss_provider *vss_provider_init(void)
{
    return &tp;
}
