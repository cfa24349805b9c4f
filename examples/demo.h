/* demo.h -- the parts of the demo plugin (examples/demo.c) that live in files of their own. */
#ifndef ARRPC_EXAMPLES_DEMO_H
#define ARRPC_EXAMPLES_DEMO_H

#include <arrpc.h>

/* {"defer": s}: answers "deferred" s seconds later, from the plugin's timer thread; with
 * answer_peer ({"defer_peer": s}), answers the caller's address instead, taken at the call. */
int demo_defer(arrpc_call *call, double seconds, int answer_peer, msgpack_packer *res);
/* {"answer_twice": _}: defers, answers "deferred", then tries a second answer and logs what it
 * returned (ARRPC_ESTATE, -13: refused). */
int demo_answer_twice(arrpc_call *call);

#endif
