/* arrpcd_python.h -- arrpcd's `--handler py:MODULE:FUNCTION`, served by the arrpc-python.so
 * plugin (python/arrpcd_plugin.c), so that arrpcd itself never links libpython. */
#ifndef ARRPC_TOOLS_ARRPCD_PYTHON_H
#define ARRPC_TOOLS_ARRPCD_PYTHON_H

#include <stddef.h>

#include "arrpc.h"

#define ARRPCD_PYTHON_PREFIX "py:"
#define ARRPCD_PYTHONPATH_MAX 16 /* --pythonpath directories */

/* True when spec names a Python handler. */
int arrpcd_python_spec(const char *spec);
/* Makes srv serve the Python handler of spec ("py:MODULE:FUNCTION") with these directories in
 * front of sys.path: the plugin, its init argument, and the function's __name__ (learnt once, in
 * a child process that imports the module; FUNCTION when it cannot tell) as the metrics'
 * handler_func. 0, or -1 after saying why on stderr. */
/* What arrpcd_python_configure sets, for arrpcd -t too: the plugin "PATH:SYMBOL" into plugin,
 * its init argument (*arg, to free) and FUNCTION (*function, inside spec). 0, or -1 after saying
 * why on stderr. */
int arrpcd_python_resolve(const char *spec, const char *const *paths, size_t npaths, char *plugin,
                          size_t plugin_len, char **arg, const char **function);
int arrpcd_python_configure(arrpc_server *srv, const char *spec, const char *const *paths,
                            size_t npaths);

#endif
