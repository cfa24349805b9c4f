/* server.c -- the smallest arrpc server: prints each request, answers "got it". */
#include <stdio.h>

#include <arrpc.h>

static int handler(arrpc_call *call, const msgpack_object *request, msgpack_packer *response,
                   void *udata)
{
    (void)call, (void)udata;
    msgpack_object_print(stdout, *request);
    printf("\n");
    return msgpack_pack_str_with_body(response, "got it", 6);
}

int main(void)
{
    arrpc_server *server = arrpc_server_new("127.0.0.1", 8080, handler, NULL);
    if (!server || arrpc_server_run(server) != 0) {
        fprintf(stderr, "server: %s\n", server ? arrpc_server_errstr(server) : "out of memory");
        return 1;
    }
    arrpc_server_free(server);
    return 0;
}
