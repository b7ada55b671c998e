/* A tiny assertion harness for halo's C tests: each CHECK counts a pass or
 * prints the failing expression with its line; SUMMARY prints
 * "N passed, N failed" and returns the exit code. */
#ifndef HALO_CHECK_H
#define HALO_CHECK_H

#include <stdio.h>
#include "halo.h"

static int checks_passed = 0;
static int checks_failed = 0;

#define CHECK(cond)                                                        \
    do {                                                                   \
        if (cond) {                                                        \
            checks_passed++;                                               \
        } else {                                                           \
            checks_failed++;                                               \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__,         \
                    __LINE__, #cond);                                      \
        }                                                                  \
    } while (0)

/* Checks a status, printing halo's last error message when it differs. */
#define CHECK_STATUS(call, want)                                           \
    do {                                                                   \
        HaloStatus got_ = (call);                                          \
        if (got_ == (want)) {                                              \
            checks_passed++;                                               \
        } else {                                                           \
            char msg_[1024] = {0};                                         \
            halo_last_error_message(msg_, sizeof msg_, NULL);              \
            checks_failed++;                                               \
            fprintf(stderr, "%s:%d: %s returned %d, expected %d: %s\n",    \
                    __FILE__, __LINE__, #call, (int)got_, (int)(want),     \
                    msg_);                                                 \
        }                                                                  \
    } while (0)

#define CHECK_OK(call) CHECK_STATUS(call, HALO_STATUS_OK)

/* Prints the closing line and returns the process exit code. */
static int summary(const char *suite) {
    printf("%s: %d passed, %d failed\n", suite, checks_passed, checks_failed);
    return checks_failed == 0 ? 0 : 1;
}

#endif
