/*
 * hostport.c - splits "HOST:PORT" for storesvc (lmtp_tcp) and storectl
 * (load --tcp), with one rule for both: see hostport.h. No I/O.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hostport.h"

int hostport_split(const char *hp, char *host, size_t hlen, char *port, size_t plen)
{
    const char *colon = strrchr(hp, ':');
    if (!colon || colon == hp || (size_t)(colon - hp) >= hlen || !colon[1])
        return -EINVAL;
    char *end = NULL;
    errno = 0;
    long n = strtol(colon + 1, &end, 10);
    if (errno || *end || colon[1] < '0' || colon[1] > '9' || n < 1 || n > 65535 ||
        strlen(colon + 1) >= plen)
        return -EINVAL;
    memcpy(host, hp, (size_t)(colon - hp));
    host[colon - hp] = '\0';
    snprintf(port, plen, "%s", colon + 1);
    return 0;
}
