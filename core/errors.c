/* errors.c -- the names and texts of the ARRPC_E* codes, from the one table in arrpc.h. */
#include "arrpc.h"

const char *arrpc_strerror(int err)
{
    switch (err) {
#define ARRPC_ERR_TEXT(name, value, text)                                                          \
    case value:                                                                                    \
        return text;
        ARRPC_ERRNO_MAP(ARRPC_ERR_TEXT)
#undef ARRPC_ERR_TEXT
    }
    return "unknown error";
}

const char *arrpc_errname(int err)
{
    switch (err) {
#define ARRPC_ERR_NAME(name, value, text)                                                          \
    case value:                                                                                    \
        return #name;
        ARRPC_ERRNO_MAP(ARRPC_ERR_NAME)
#undef ARRPC_ERR_NAME
    }
    return "EUNKNOWN";
}
