/* http_reply.h -- answering a libmicrohttpd request from memory; shared by the master's exporter
 * and the client's. */
#ifndef ARRPC_METRICS_HTTP_REPLY_H
#define ARRPC_METRICS_HTTP_REPLY_H

#include <stddef.h>
#include <microhttpd.h>

#define ARRPC_HTTP_METRICS_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* Queues `body` (malloc'd; freed by libmicrohttpd, or here on failure) with its content type;
 * a 405 also says which methods are allowed. */
enum MHD_Result arrpc__http_reply(struct MHD_Connection *conn, unsigned status, char *body,
                                  size_t len, const char *type);
/* A short plain-text answer. */
enum MHD_Result arrpc__http_text(struct MHD_Connection *conn, unsigned status, const char *msg);
/* True for GET and HEAD, the only methods the exporters answer. */
int arrpc__http_method_allowed(const char *method);

#endif
