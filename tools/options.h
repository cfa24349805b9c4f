/* options.h -- one table of command-line options drives parsing, --help and the man page.
 *
 * Each program describes its options once, as an array of arrpc_opt ending in an entry whose
 * name is NULL, and its page as an arrpc_opt_program. arrpc_opt_parse reads argv into the
 * program's options struct (at each entry's offset) through getopt_long built from the table;
 * --help prints text made from the same table, the hidden --help-man a roff man page and the
 * hidden --help-completion a bash completion script. arrpc_opt_parse_file reads a configuration
 * file of "name = value" lines through the same table, so a file and the command line accept
 * exactly the same options and values. */
#ifndef ARRPC_TOOLS_OPTIONS_H
#define ARRPC_TOOLS_OPTIONS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    ARRPC_OPT_FLAG,       /* no argument: the int at off becomes 1 */
    ARRPC_OPT_UNSIGNED,   /* a decimal number in [min, max] into the unsigned integer at off */
    ARRPC_OPT_SECONDS_MS, /* decimal seconds, fractions allowed, into an unsigned of ms */
    ARRPC_OPT_SECONDS_NS, /* the same into a uint64_t of ns */
    ARRPC_OPT_STRING,     /* a string or path: the const char * at off points into argv */
    ARRPC_OPT_HOSTPORT,   /* HOST:PORT into the arrpc_opt_hostport at off */
    ARRPC_OPT_CUSTOM,     /* the entry's set callback takes the value */
    ARRPC_OPT_HELP,       /* prints the help on stdout; the program exits 0 */
    ARRPC_OPT_EXIT,       /* runs the entry's run callback (--version); the program exits 0 */
} arrpc_opt_kind;

/* Where a HOST:PORT option goes. */
typedef struct {
    char host[256];
    uint16_t port;
} arrpc_opt_hostport;

typedef struct arrpc_opt arrpc_opt;

/* One option. Bounds are inclusive: numbers for UNSIGNED, milliseconds for the SECONDS kinds.
 * size is the width of the field at off (ARRPC_OPT_AT fills both); an UNSIGNED field has 4 or 8
 * bytes, and the parser refuses a table whose field does not fit its kind. A default shown from
 * the struct is left out when it is 0 or NULL. */
struct arrpc_opt {
    const char *name; /* long name, without "--" */
    char short_name;  /* 0: none */
    arrpc_opt_kind kind;
    const char *arg;  /* the value's name in help, e.g. "N", "HOST:PORT"; NULL for FLAG */
    size_t off, size; /* where the value goes in the program's options struct */
    unsigned long min, max;
    const char *def;  /* the default as words; NULL: shown from the struct's initial value */
    int show_max;     /* 1: help names max, as "(default: D, at most MAX)" */
    int cli_only;     /* 1: refused in a configuration file (--config itself, --test-config) */
    int restart;      /* 1: a reload cannot change it: a new value waits for a restart */
    const char *help; /* one sentence or more; help and man wrap it */
    int (*set)(void *opts, const char *arg); /* CUSTOM: 0, or -1 after saying why on stderr */
    void (*run)(void);                       /* EXIT: prints what the option asks for */
};

/* The place of a member of the options struct, for an entry's off and size. */
#define ARRPC_OPT_AT(type, member) offsetof(type, member), sizeof(((type *)0)->member)

/* A titled paragraph after the options: plain in --help, a section in the man page. */
typedef struct {
    const char *title; /* man section, e.g. "EXIT STATUS"; help prints only the text */
    const char *text;  /* blank lines separate paragraphs */
} arrpc_opt_section;

/* What a program's help and man page say around its options. */
typedef struct {
    const char *name;                  /* the program, also the prefix of every message */
    const char *man_section;           /* "1", "8" */
    const char *synopsis;              /* after the name, e.g. "[options] [JSON]" */
    const char *summary;               /* the man page's NAME line */
    const char *description;           /* paragraphs before the options */
    const arrpc_opt *opts;             /* ends with an entry whose name is NULL */
    const arrpc_opt_section *sections; /* after the options; ends with a NULL title; may be NULL */
    int stop_at_error; /* 1: the first bad option ends parsing (later --help is not seen) */
} arrpc_opt_program;

/* Reads argv's options into opts; help and man show defaults from defaults (a copy of opts as
 * the program initialised it, before any option was read). Returns 0 with *next the index of the
 * first operand, 1 when an option such as --help has done the program's work (exit 0), or -1 after
 * saying on stderr what is wrong (the program exits 2; bad numbers read "PROG: --OPT wants a number
 * from MIN to MAX, not 'ARG'"). Unless stop_at_error, every bad option is reported before -1. */
int arrpc_opt_parse(const arrpc_opt_program *p, void *opts, const void *defaults, int argc,
                    char **argv, int *next);

/* Configuration files: at most this many bytes, and this many on one line (newline included). */
#define ARRPC_OPT_FILE_MAX (1024u * 1024u)
#define ARRPC_OPT_FILE_LINE_MAX 8192u

/* Reads the configuration file at path into opts through p's table, as if each line were the
 * same option on the command line, in the file's order. A line is "name = value" (a long name
 * without "--"), or "name" alone for a flag, which also takes "name = true" or "name = false";
 * blank lines and lines whose first non-blank character is '#' are skipped; spaces around the
 * name and the value are dropped (a value keeps any '#' it holds). Options marked cli_only, --help
 * and --version are refused. String options point into *text, which the caller frees after
 * the last use of opts (also on failure). Returns 0, or -1 after saying on stderr, as
 * "PROG: PATH:LINE: ...", what is wrong with each bad line (or that the file cannot be read or is
 * larger than ARRPC_OPT_FILE_MAX). */
int arrpc_opt_parse_file(const arrpc_opt_program *p, void *opts, const char *path, char **text);

/* Whether entry o has the same value in a and b (strings compared by content). */
int arrpc_opt_same(const arrpc_opt *o, const void *a, const void *b);

/* The value of entry o in opts as the help would show it ("" for an unset string or address,
 * "true"/"false" for a flag). */
const char *arrpc_opt_value_text(const arrpc_opt *o, const void *opts, char *buf, size_t len);

/* Writes the help, with defaults read from opts (the struct as the program initialised it). */
void arrpc_opt_write_help(FILE *to, const arrpc_opt_program *p, const void *opts);

/* Writes a roff man page (man(7) macros) of the same content. */
void arrpc_opt_write_man(FILE *to, const arrpc_opt_program *p, const void *opts);

/* Writes a bash completion script for the program (the hidden --help-completion): every long and
 * short name; after an option, file names when its value is named "F" or "PATH", the words of
 * a value named "a|b" (such as "arrpc|resp"), and nothing for any other value. */
void arrpc_opt_write_completion(FILE *to, const arrpc_opt_program *p);

#endif
