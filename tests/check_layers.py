#!/usr/bin/python3
# check_layers.py -- fails, naming file and line, on an #include "..." that runs against the
# layering (docs: the layout issue). Bottom up:
#
#   core <- metrics <- shm <- workers <- master <- server <- tools
#                    client (beside workers: it may include core and metrics only)
#   python (the Python package's C code): the public header only, as any user of the library
#
# A directory may include its own files and those of any layer below it; workers and client
# never include each other; include/ (the public header) may be included from anywhere and
# includes nothing of the layers. Usage: check_layers.py [SOURCE_DIR] (default: this file's
# parent's parent). Python, despite the name: it is run as a program, by its #! line.
import os
import re
import sys

RANK = {"core": 0, "metrics": 1, "shm": 2, "workers": 3, "client": 3, "master": 4,
        "server": 5, "tools": 6, "python": 7}
# Layers a directory may not include although they rank below (or beside) it.
FORBIDDEN = {"client": {"shm", "workers"}, "workers": {"client"},
             "python": {"core", "metrics", "shm", "workers", "client", "master", "server", "tools"}}
PUBLIC = "include"
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def layer_of(root, path):
    """The top directory of path inside root, or None when it lies outside every layer."""
    rel = os.path.relpath(path, root)
    top = rel.split(os.sep)[0]
    return top if top in RANK or top == PUBLIC else None


def resolve(root, source, name):
    """Where the compiler finds a quoted include: next to the source, then in include/."""
    for base in (os.path.dirname(source), os.path.join(root, PUBLIC)):
        candidate = os.path.normpath(os.path.join(base, name))
        if os.path.isfile(candidate):
            return candidate
    return None


def verdict(src_layer, dst_layer):
    """Why src_layer may not include dst_layer, or None when it may."""
    if dst_layer == PUBLIC or dst_layer == src_layer:
        return None
    if src_layer == PUBLIC:
        return "the public header includes nothing of the layers"
    if dst_layer in FORBIDDEN.get(src_layer, ()):
        return "sideways: %s may not include %s" % (src_layer, dst_layer)
    if RANK[dst_layer] >= RANK[src_layer]:
        return "upward: %s is not below %s" % (dst_layer, src_layer)
    return None


def check_file(root, source):
    problems = []
    src_layer = layer_of(root, source)
    with open(source, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            match = INCLUDE.match(line)
            if not match:
                continue
            where = "%s:%d" % (os.path.relpath(source, root), number)
            target = resolve(root, source, match.group(1))
            if target is None:
                problems.append('%s: #include "%s" is not found' % (where, match.group(1)))
                continue
            dst_layer = layer_of(root, target)
            why = verdict(src_layer, dst_layer) if dst_layer else "outside every layer"
            if why:
                problems.append('%s: #include "%s": %s' % (where, match.group(1), why))
    return problems


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, ".."))
    problems, files = [], 0
    for top in list(RANK) + [PUBLIC]:
        for dirpath, _, names in sorted(os.walk(os.path.join(root, top))):
            for name in sorted(names):
                if name.endswith((".c", ".h")):
                    files += 1
                    problems += check_file(root, os.path.join(dirpath, name))
    for problem in problems:
        print(problem)
    print("check_layers: %d files, %d includes against the layering" % (files, len(problems)))
    return 1 if problems or files == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
