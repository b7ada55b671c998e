/* Volumes, series reading and the protocol's misuse cases through the C ABI.
 *
 * Usage: test_volume SERIES_FOLDER
 * SERIES_FOLDER is a DICOM series (tests/dicom-corpus/good in make test). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"

static const size_t DIMS[3] = {4, 3, 2};
static const double SPACING[3] = {0.5, 0.5, 3.0};
static const double ORIGIN[3] = {-10.0, 20.0, 5.0};
static const double IDENTITY[9] = {1, 0, 0, 0, 1, 0, 0, 0, 1};

static void version_and_errors(void) {
    char buf[64];
    size_t needed = 0;
    CHECK_OK(halo_version(buf, sizeof buf, &needed));
    CHECK(needed == strlen(buf) + 1);

    char tiny[2];
    CHECK_STATUS(halo_version(tiny, sizeof tiny, &needed), HALO_STATUS_BUFFER_TOO_SMALL);
    CHECK(needed > 2);

    char msg[256];
    CHECK_OK(halo_last_error_message(msg, sizeof msg, NULL));
    CHECK(strstr(msg, "too small") != NULL);
}

static void volume_round_trip(void) {
    float data[24];
    for (int i = 0; i < 24; i++) data[i] = (float)i * 0.5f;
    HaloVolume *v = NULL;
    CHECK_OK(halo_volume_new(DIMS, SPACING, ORIGIN, IDENTITY, data, 24, &v));
    CHECK(v != NULL);

    size_t dims[3];
    double spacing[3], origin[3], direction[9];
    CHECK_OK(halo_volume_geometry(v, dims, spacing, origin, direction));
    CHECK(dims[0] == 4 && dims[1] == 3 && dims[2] == 2);
    CHECK(spacing[2] == 3.0 && origin[0] == -10.0 && direction[8] == 1.0);

    float back[24];
    CHECK_OK(halo_volume_copy_data(v, back, 24));
    CHECK(memcmp(back, data, sizeof data) == 0);
    CHECK_STATUS(halo_volume_copy_data(v, back, 23), HALO_STATUS_BUFFER_TOO_SMALL);
    CHECK_OK(halo_volume_free(v));
}

static void misuse(void) {
    float data[24] = {0};
    HaloVolume *v = (HaloVolume *)0x1; /* must stay untouched on failure */

    CHECK_STATUS(halo_volume_new(NULL, SPACING, ORIGIN, IDENTITY, data, 24, &v),
                 HALO_STATUS_NULL_ARGUMENT);
    CHECK(v == (HaloVolume *)0x1);
    CHECK_STATUS(halo_volume_new(DIMS, SPACING, ORIGIN, IDENTITY, data, 24, NULL),
                 HALO_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(halo_volume_new(DIMS, SPACING, ORIGIN, IDENTITY, data, 23, &v),
                 HALO_STATUS_INVALID_ARGUMENT);
    CHECK(v == (HaloVolume *)0x1);

    char msg[256];
    CHECK_OK(halo_last_error_message(msg, sizeof msg, NULL));
    CHECK(strstr(msg, "len is 23") != NULL);

    const size_t zero_dims[3] = {4, 0, 2};
    CHECK_STATUS(halo_volume_new(zero_dims, SPACING, ORIGIN, IDENTITY, data, 0, &v),
                 HALO_STATUS_INVALID_ARGUMENT);
    const double bad_spacing[3] = {0.5, -1.0, 3.0};
    CHECK_STATUS(halo_volume_new(DIMS, bad_spacing, ORIGIN, IDENTITY, data, 24, &v),
                 HALO_STATUS_INVALID_ARGUMENT);
    const double skew[9] = {1, 0.5, 0, 0, 1, 0, 0, 0, 1};
    CHECK_STATUS(halo_volume_new(DIMS, SPACING, ORIGIN, skew, data, 24, &v),
                 HALO_STATUS_INVALID_ARGUMENT);
    data[5] = NAN;
    CHECK_STATUS(halo_volume_new(DIMS, SPACING, ORIGIN, IDENTITY, data, 24, &v),
                 HALO_STATUS_INVALID_ARGUMENT);

    CHECK_OK(halo_volume_free(NULL));
    CHECK_STATUS(halo_volume_geometry(NULL, NULL, NULL, NULL, NULL),
                 HALO_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(halo_volume_copy_data(NULL, data, 24), HALO_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(halo_series_read(NULL, NULL, &v), HALO_STATUS_NULL_ARGUMENT);
    CHECK(v == (HaloVolume *)0x1);
}

static void series(const char *folder) {
    HaloVolume *v = NULL;
    CHECK_OK(halo_series_read(folder, NULL, &v));
    size_t dims[3] = {0};
    CHECK_OK(halo_volume_geometry(v, dims, NULL, NULL, NULL));
    CHECK(dims[0] == 8 && dims[1] == 8 && dims[2] == 4);
    float *buf = malloc(sizeof(float) * 256);
    CHECK_OK(halo_volume_copy_data(v, buf, 256));
    CHECK(buf[0] == 0.0f && buf[255] == 63.0f + 300.0f);
    free(buf);
    CHECK_OK(halo_volume_free(v));

    HaloVolume *missing = NULL;
    CHECK_STATUS(halo_series_read("/nonexistent/folder", NULL, &missing), HALO_STATUS_IO);
    char msg[512];
    CHECK_OK(halo_last_error_message(msg, sizeof msg, NULL));
    CHECK(strstr(msg, "/nonexistent/folder") != NULL);
    CHECK(missing == NULL);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s SERIES_FOLDER\n", argv[0]);
        return 2;
    }
    version_and_errors();
    volume_round_trip();
    misuse();
    series(argv[1]);
    return summary("C ABI volumes");
}
