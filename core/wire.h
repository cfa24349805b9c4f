/* wire.h -- the error replies of arrpc 0.5.0's wire, shared by the server and the client.
 *
 * A failed request is answered with one MessagePack str: one of these prefixes, then the message.
 */
#ifndef ARRPC_CORE_WIRE_H
#define ARRPC_CORE_WIRE_H

#define ARRPC_RPC_ERROR_PREFIX "arrpc.error.RpcException: "
#define ARRPC_AUTH_ERROR_PREFIX "arrpc.error.AuthException: "

#endif
