/* notify.c -- telling systemd about readiness, reloads, stops and a new main pid (sd_notify's
 * datagram protocol, without linking libsystemd). Does nothing outside systemd. */
#include "internal.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

void arrpc__notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = path ? strlen(path) : 0;
    if (len == 0 || len >= sizeof sa.sun_path || (path[0] != '/' && path[0] != '@')) return;
    memcpy(sa.sun_path, path, len);
    if (path[0] == '@') /* an abstract socket: its name starts with a NUL byte */
        sa.sun_path[0] = '\0';
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    char msg[128];
    int n = snprintf(msg, sizeof msg, "%s\nMAINPID=%ld", state, (long)getpid());
    sendto(fd, msg, (size_t)n, MSG_NOSIGNAL, (struct sockaddr *)&sa,
           (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
    close(fd);
}
