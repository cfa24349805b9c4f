/* http_reply.c -- answering a libmicrohttpd request from memory (see http_reply.h). */
#include "http_reply.h"

#include <stdlib.h>
#include <string.h>

enum MHD_Result arrpc__http_reply(struct MHD_Connection *conn, unsigned status, char *body,
                                  size_t len, const char *type)
{
    struct MHD_Response *res = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!res) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(res, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(res, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result ok = MHD_queue_response(conn, status, res);
    MHD_destroy_response(res);
    return ok;
}

enum MHD_Result arrpc__http_text(struct MHD_Connection *conn, unsigned status, const char *msg)
{
    char *body = strdup(msg);
    return body ? arrpc__http_reply(conn, status, body, strlen(body), "text/plain; charset=utf-8")
                : MHD_NO;
}

int arrpc__http_method_allowed(const char *method)
{
    return strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
}
