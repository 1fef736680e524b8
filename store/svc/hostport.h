/*
 * hostport.h - "HOST:PORT" as storesvc's lmtp_tcp and storectl load --tcp
 * take it: split at the last colon (so "[::1]:24" and "::1:24" keep their
 * address), HOST not empty, PORT a decimal number 1 to 65535 (getaddrinfo
 * would take "99999" and use its low 16 bits).
 */
#ifndef STORESVC_HOSTPORT_H
#define STORESVC_HOSTPORT_H

#include <stddef.h>

/* Fills host (hlen bytes) and port (plen bytes, the digits).
 * @return 0, or -EINVAL if hp is not HOST:PORT or either does not fit. */
int hostport_split(const char *hp, char *host, size_t hlen, char *port, size_t plen);

#endif
