/* consumer.c -- a user's program built against an installed arrpc: calls a server once with
 * {"consumer": "hello"} and prints the reply. Usage: consumer HOST PORT. */
#include <stdio.h>
#include <stdlib.h>

#include <arrpc.h>

static int call_once(arrpc_client *client, const msgpack_sbuffer *request)
{
    arrpc_response *response = NULL;
    int rc = arrpc_client_set_timeout(client, 10000);
    if (rc == 0) rc = arrpc_client_set_connect_timeout(client, 10000);
    if (rc == 0) rc = arrpc_client_send(client, request->data, request->size, &response);
    if (rc == 0) {
        msgpack_object_print(stdout, *arrpc_response_object(response));
        printf("\n");
    } else {
        fprintf(stderr, "consumer: %s: %s\n", arrpc_errname(rc), arrpc_client_errstr(client));
    }
    arrpc_response_free(response);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: consumer HOST PORT\n");
        return 2;
    }
    msgpack_sbuffer request;
    msgpack_sbuffer_init(&request);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &request, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "consumer", 8);
    msgpack_pack_str_with_body(&pk, "hello", 5);

    arrpc_client *client = arrpc_client_new(argv[1], (uint16_t)atoi(argv[2]));
    int rc = client ? call_once(client, &request) : ARRPC_ENOMEM;
    if (!client) fprintf(stderr, "consumer: out of memory\n");
    arrpc_client_free(client);
    msgpack_sbuffer_destroy(&request);
    return rc == 0 ? 0 : 1;
}
