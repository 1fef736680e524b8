/* requestor.c - placeholder, being written. */
