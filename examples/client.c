/* client.c -- the smallest arrpc client: sends {"foo": "bar"}, prints the reply ("got it"). */
#include <stdio.h>

#include <arrpc.h>

int main(void)
{
    msgpack_sbuffer request;
    msgpack_sbuffer_init(&request);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &request, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "foo", 3);
    msgpack_pack_str_with_body(&pk, "bar", 3);

    arrpc_client *client = arrpc_client_new("127.0.0.1", 8080);
    arrpc_response *response = NULL;
    int rc =
        client ? arrpc_client_send(client, request.data, request.size, &response) : ARRPC_ENOMEM;
    if (rc == 0) {
        msgpack_object_print(stdout, *arrpc_response_object(response));
        printf("\n");
    } else {
        fprintf(stderr, "client: %s\n", client ? arrpc_client_errstr(client) : "out of memory");
    }
    arrpc_response_free(response);
    arrpc_client_free(client);
    msgpack_sbuffer_destroy(&request);
    return rc == 0 ? 0 : 1;
}
