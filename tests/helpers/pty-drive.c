/*
 * pty-drive.c - runs a program on a pseudo-terminal and types into it, for
 * tests of interactive programs (diskshadow's DISKSHADOW> prompt, line
 * editing and history).
 *
 *   pty-drive TIMEOUT_S PROGRAM [ARGS...] < STEPS
 *
 * STEPS, one per line:
 *   expect TEXT   wait until TEXT appears in the output after the point
 *                 where the previous expect matched
 *   send TEXT     type TEXT; \n \r \e \t and \\ are escapes (\e[A is the
 *                 up arrow)
 * Everything the program writes is copied to stdout. After the last step
 * the output is read until the program exits.
 *
 * Exit status: the program's exit status; 124 when TIMEOUT_S passed (an
 * expect that never matched, or a program that does not exit: it gets
 * SIGKILL); 125 for a usage or system error.
 *
 * Invariants: the whole output is kept in one growing buffer (bounded by
 * 16 MiB), so an expect never misses text split across reads; the child
 * is always reaped.
 */
#include <errno.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_OUTPUT (16u << 20)

static char *out;
static size_t out_len, out_cap, matched;
static int master = -1;
static pid_t child;
static struct timespec deadline;

static long ms_left(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (deadline.tv_sec - now.tv_sec) * 1000 + (deadline.tv_nsec - now.tv_nsec) / 1000000;
}

/* Reads what is there (waiting up to the deadline). @return 1 data, 0 EOF, -1 timeout. */
static int pump(void)
{
    long left = ms_left();
    if (left <= 0)
        return -1;
    struct pollfd p = { .fd = master, .events = POLLIN };
    int r = poll(&p, 1, (int)(left > 1000 ? 1000 : left));
    if (r < 0)
        return errno == EINTR ? 1 : 0;
    if (r == 0)
        return 1;
    char buf[4096];
    ssize_t n = read(master, buf, sizeof buf);
    if (n <= 0)
        return 0;               /* EIO: the child closed the terminal */
    fwrite(buf, 1, (size_t)n, stdout);
    fflush(stdout);
    if (out_len + (size_t)n + 1 > out_cap) {
        size_t cap = out_cap ? out_cap * 2 : 65536;
        while (cap < out_len + (size_t)n + 1)
            cap *= 2;
        if (cap > MAX_OUTPUT)
            return 0;
        char *o = realloc(out, cap);
        if (!o)
            return 0;
        out = o;
        out_cap = cap;
    }
    memcpy(out + out_len, buf, (size_t)n);
    out_len += (size_t)n;
    out[out_len] = '\0';
    return 1;
}

static int expect(const char *text)
{
    size_t n = strlen(text);
    for (;;) {
        if (out_len >= matched + n) {
            char *hit = memmem(out + matched, out_len - matched, text, n);
            if (hit) {
                matched = (size_t)(hit - out) + n;
                return 0;
            }
        }
        int r = pump();
        if (r <= 0) {
            fprintf(stderr, "pty-drive: %s waiting for '%s'\n",
                    r < 0 ? "timed out" : "end of output", text);
            return -1;
        }
    }
}

static int send_text(const char *text)
{
    char buf[4096];
    size_t n = 0;
    for (const char *p = text; *p && n < sizeof buf; p++) {
        if (*p != '\\' || !p[1]) {
            buf[n++] = *p;
            continue;
        }
        switch (*++p) {
        case 'n': buf[n++] = '\n'; break;
        case 'r': buf[n++] = '\r'; break;
        case 'e': buf[n++] = '\033'; break;
        case 't': buf[n++] = '\t'; break;
        default: buf[n++] = *p; break;
        }
    }
    return write(master, buf, n) == (ssize_t)n ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: pty-drive TIMEOUT_S PROGRAM [ARGS...] < STEPS\n");
        return 125;
    }
    int timeout = atoi(argv[1]);
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += timeout > 0 ? timeout : 10;
    struct winsize ws = { .ws_row = 24, .ws_col = 100 };
    child = forkpty(&master, NULL, NULL, &ws);
    if (child < 0) {
        perror("pty-drive: forkpty");
        return 125;
    }
    if (child == 0) {
        setenv("TERM", "xterm", 1);
        execvp(argv[2], argv + 2);
        perror("pty-drive: exec");
        _exit(125);
    }
    int rc = 0;
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    while (rc == 0 && (len = getline(&line, &cap, stdin)) >= 0) {
        if (len > 0 && line[len - 1] == '\n')
            line[--len] = '\0';
        if (!strncmp(line, "expect ", 7))
            rc = expect(line + 7);
        else if (!strncmp(line, "send ", 5))
            rc = send_text(line + 5);
        else if (*line)
            fprintf(stderr, "pty-drive: ignoring step '%s'\n", line);
    }
    free(line);
    while (rc == 0) {
        int r = pump();
        if (r == 0)
            break;
        if (r < 0)
            rc = -1;
    }
    int status = 0;
    if (rc != 0)
        kill(child, SIGKILL);
    waitpid(child, &status, 0);
    free(out);
    if (rc != 0)
        return 124;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
