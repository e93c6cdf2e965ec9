/* fuzz.h - what the fuzz targets share: the libFuzzer entry point, a
 * null output stream, the directory of the model zoo (lang/), and the
 * reference-interpreter check used by fuzz_slapo.c and fuzz_schedule.c.
 *
 * Each target defines LLVMFuzzerTestOneInput. Built with
 * -fsanitize=fuzzer it is driven by libFuzzer (fuzz/build.sh); built with
 * replay.c instead it runs the files of directories once each, which is
 * how the normal test suite replays the corpora (tests/fuzz/meson.build).
 */
#ifndef SLAPO_FUZZ_H
#define SLAPO_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

/* A FILE that discards what is written (opened once, never closed). */
FILE *fuzz_devnull(void);

/* The model zoo directory: $SLAPO_ROOT/lang when set, else the source
 * tree's lang/ (SLAPO_SOURCE_ROOT, given by the build). */
const char *fuzz_lang_dir(void);

/* Whether diagnostics text holds an "internal error" diagnostic (a line
 * "PATH:LINE:COL: error: internal error: ..."), not merely the words in an
 * echoed source line or a quoted string. */
bool fuzz_internal_error(const char *diag);

/* Set by replay.c for -v: targets may describe the input they decoded
 * (fuzz_schedule prints the .slapo program it generated). */
extern int fuzz_verbose;

#endif
