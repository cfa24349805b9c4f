/* resolver_plugin.c -- a handler that makes a blocking call: {"resolve": "name"} answers the
 * addresses getaddrinfo() finds for name, as a list of strings.
 *
 *   arrpcd --handler build/lib/arrpc-resolver.so:resolver --threads 8
 *
 * A DNS lookup can take seconds. Inline in the event loop (--threads 0) it would hold up every
 * other connection of its worker; with --threads it holds up only one handler thread and its own
 * connection. getaddrinfo is thread-safe, and the handler keeps no state, so any number of
 * threads may run it at once: that is all "thread-safe" asks of a handler. */
#include <arpa/inet.h>
#include <netdb.h>
#include <string.h>
#include <sys/socket.h>

#include <arrpc.h>

#define RESOLVER_NAME_MAX 255 /* longest DNS name */
#define RESOLVER_ADDRS_MAX 32 /* addresses answered at most */

static const msgpack_object *name_of(const msgpack_object *req)
{
    if (req->type != MSGPACK_OBJECT_MAP || req->via.map.size != 1) return NULL;
    const msgpack_object_kv *kv = &req->via.map.ptr[0];
    if (kv->key.type != MSGPACK_OBJECT_STR || kv->key.via.str.size != 7 ||
        memcmp(kv->key.via.str.ptr, "resolve", 7) != 0 || kv->val.type != MSGPACK_OBJECT_STR)
        return NULL;
    return &kv->val;
}

/* The printable form of one result, or 0 when it is not an IP address. */
static size_t text_of(const struct addrinfo *ai, char *out, size_t len)
{
    const void *addr = ai->ai_family == AF_INET
                           ? (const void *)&((const struct sockaddr_in *)ai->ai_addr)->sin_addr
                           : (const void *)&((const struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
    return inet_ntop(ai->ai_family, addr, out, (socklen_t)len) ? strlen(out) : 0;
}

ARRPC_API int resolver(arrpc_call *call, const msgpack_object *request, msgpack_packer *response,
                       void *udata)
{
    (void)udata;
    const msgpack_object *v = name_of(request);
    if (!v) return arrpc_call_fail(call, "expected {\"resolve\": \"name\"}");
    char name[RESOLVER_NAME_MAX + 1];
    if (v->via.str.size > RESOLVER_NAME_MAX) return arrpc_call_fail(call, "name too long");
    memcpy(name, v->via.str.ptr, v->via.str.size);
    name[v->via.str.size] = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *found;
    int rc = getaddrinfo(name, NULL, &hints, &found); /* blocks: the reason for --threads */
    if (rc != 0) return arrpc_call_fail(call, "%s: %s", name, gai_strerror(rc));
    char text[RESOLVER_ADDRS_MAX][INET6_ADDRSTRLEN];
    size_t lens[RESOLVER_ADDRS_MAX], n = 0;
    for (const struct addrinfo *ai = found; ai && n < RESOLVER_ADDRS_MAX; ai = ai->ai_next)
        if ((lens[n] = text_of(ai, text[n], sizeof text[n]))) n++;
    freeaddrinfo(found);
    msgpack_pack_array(response, n);
    for (size_t i = 0; i < n; i++)
        msgpack_pack_str_with_body(response, text[i], lens[i]);
    return 0;
}
