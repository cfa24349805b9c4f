/* fdpass.h -- sending and receiving file descriptors with a message over a Unix socket. */
#ifndef ARRPC_CORE_FDPASS_H
#define ARRPC_CORE_FDPASS_H

#include <stddef.h>
#include <sys/types.h>

#define ARRPC_FDPASS_MAX 4 /* descriptors in one message */

/* Sends len bytes (at least 1) and nfds descriptors as one message. Returns 0, or ARRPC_ESYS
 * with errno set (EAGAIN when a nonblocking socket is full). */
int arrpc__fd_send(int sock, const void *buf, size_t len, const int *fds, int nfds);

/* Receives one message into buf (cap bytes) and up to ARRPC_FDPASS_MAX descriptors, which
 * arrive close-on-exec. Returns the byte count (0 at EOF), or ARRPC_ESYS with errno set; a
 * truncated message or too many descriptors is ARRPC_EPROTO, with any received fds closed. */
ssize_t arrpc__fd_recv(int sock, void *buf, size_t cap, int *fds, int *nfds);

#endif
