/* Sending through the C ABI to a storescp started by tools/test_c.sh.
 *
 * Usage: test_send SERIES_FOLDER PORT DEAD_PORT
 * PORT has storescp listening on 127.0.0.1; DEAD_PORT has nobody. */
#include <stdlib.h>
#include <string.h>

#include "check.h"

static int progress_calls = 0;

static bool count_progress(void *user, size_t done, size_t total) {
    (void)user;
    progress_calls++;
    return done <= total;
}

static void send_to(const char *folder, int port, size_t want_stored, const char *want_text) {
    char dest[64];
    snprintf(dest, sizeof dest, "STORESCP@127.0.0.1:%d", port);
    const char *paths[] = {folder};
    HaloSendReport *report = NULL;

    CHECK_OK(halo_send(dest, "HALOCTEST", paths, 1, 2.0, 0, count_progress, NULL, &report));
    size_t stored = 99, failed = 99;
    CHECK_OK(halo_send_report_counts(report, &stored, &failed));
    CHECK(stored == want_stored);
    CHECK(stored + failed == 4);

    size_t needed = 0;
    CHECK_STATUS(halo_send_report_json(report, NULL, 0, &needed), HALO_STATUS_BUFFER_TOO_SMALL);
    char *json = malloc(needed);
    CHECK_OK(halo_send_report_json(report, json, needed, NULL));
    CHECK(strstr(json, want_text) != NULL);
    free(json);
    CHECK_OK(halo_send_report_free(report));
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s SERIES_FOLDER PORT DEAD_PORT\n", argv[0]);
        return 2;
    }
    send_to(argv[1], atoi(argv[2]), 4, "\"stored\"");
    CHECK(progress_calls >= 4);
    send_to(argv[1], atoi(argv[3]), 0, "refused");

    HaloSendReport *report = (HaloSendReport *)0x1;
    const char *paths[] = {argv[1]};
    CHECK_STATUS(halo_send("not a destination", NULL, paths, 1, 1.0, 0, NULL, NULL, &report),
                 HALO_STATUS_INVALID_ARGUMENT);
    CHECK(report == (HaloSendReport *)0x1);
    CHECK_STATUS(halo_send("A@127.0.0.1:1", NULL, NULL, 1, 1.0, 0, NULL, NULL, &report),
                 HALO_STATUS_NULL_ARGUMENT);
    CHECK_OK(halo_send_report_free(NULL));
    return summary("C ABI send");
}
