/* The sample ensemble end to end through the C ABI: volume from a DICOM
 * series and from a buffer, run with progress, labels, uncertainty,
 * polygons, summaries, DICOM output, comparison; cancellation; misuse; and
 * several threads at once.
 *
 * Usage: test_model SERIES_FOLDER MODEL_FOLDER OUT_FOLDER [quick]
 *
 * "quick" (for valgrind, where libtorch runs many times slower: one run
 * of the sample takes several minutes there) runs the model on the
 * buffer-made volume only, not again on the series' own, and leaves the
 * concurrency runs to the native pass. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"

static const char *series_dir, *model_dir, *out_dir;
static bool quick = false;

typedef struct {
    int calls;
    int cancel_after; /* 0: never */
    int bad;          /* calls with counts out of range */
} Progress;

static bool on_progress(void *user, size_t member, size_t members, size_t done, size_t tiles) {
    Progress *p = user;
    p->calls++;
    if (member >= members || done > tiles) p->bad++;
    return p->cancel_after == 0 || p->calls < p->cancel_after;
}

static size_t count(const HaloVolume *v) {
    size_t d[3];
    halo_volume_geometry(v, d, NULL, NULL, NULL);
    return d[0] * d[1] * d[2];
}

static float *data_of(const HaloVolume *v) {
    size_t n = count(v);
    float *buf = malloc(n * sizeof(float));
    halo_volume_copy_data(v, buf, n);
    return buf;
}

static void end_to_end(void) {
    HaloVolume *image = NULL;
    CHECK_OK(halo_series_read(series_dir, NULL, &image));

    /* The same image rebuilt from a caller buffer must give the same run. */
    size_t dims[3];
    double spacing[3], origin[3], direction[9];
    CHECK_OK(halo_volume_geometry(image, dims, spacing, origin, direction));
    float *pixels = data_of(image);
    HaloVolume *copy = NULL;
    CHECK_OK(halo_volume_new(dims, spacing, origin, direction, pixels, count(image), &copy));

    HaloModel *model = NULL;
    CHECK_OK(halo_model_open(model_dir, "cpu", 1, &model));
    size_t structures = 0;
    CHECK_OK(halo_model_structure_count(model, &structures));
    CHECK(structures == 2);
    char name[32];
    CHECK_OK(halo_model_structure_name(model, 0, name, sizeof name, NULL));
    CHECK(strcmp(name, "Prostate") == 0);

    Progress progress = {0, 0, 0};
    HaloResult *result = NULL;
    CHECK_OK(halo_model_run(model, copy, 0, on_progress, &progress, &result));
    CHECK(progress.calls >= 5);
    CHECK(progress.bad == 0);
    HaloResult *result2 = NULL;
    if (!quick) CHECK_OK(halo_model_run(model, image, 0, NULL, NULL, &result2));

    HaloVolume *labels = NULL, *labels2 = NULL, *mask = NULL, *unc = NULL;
    CHECK_OK(halo_result_volume(result, HALO_MAP_LABELS, 0, &labels));
    CHECK_OK(halo_result_volume(quick ? result : result2, HALO_MAP_LABELS, 0, &labels2));
    CHECK_OK(halo_result_volume(result, HALO_MAP_MASK, 0, &mask));
    CHECK_OK(halo_result_volume(result, HALO_MAP_UNCERTAINTY, 0, &unc));
    float *l = data_of(labels), *l2 = data_of(labels2), *m = data_of(mask), *u = data_of(unc);
    size_t n = count(labels), inside = 0, uncertain = 0;
    bool same = true, in_range = true, mask_matches = true;
    for (size_t i = 0; i < n; i++) {
        same = same && l[i] == l2[i];
        in_range = in_range && u[i] >= 0.0f && u[i] <= 0.5f;
        mask_matches = mask_matches && ((l[i] == 1.0f) == (m[i] == 1.0f));
        inside += m[i] == 1.0f;
        uncertain += u[i] > 0.05f;
    }
    CHECK(same);
    CHECK(in_range);
    CHECK(mask_matches);
    CHECK(inside > 100);
    CHECK(uncertain > 10);

    HaloStructureSummary summary;
    CHECK_OK(halo_result_summary(result, 0, &summary));
    CHECK(summary.label_value == 1);
    CHECK(fabs(summary.volume_cm3 - inside * spacing[0] * spacing[1] * spacing[2] / 1000.0) < 1e-9);
    CHECK(summary.mean_uncertainty_surface > summary.mean_uncertainty_inside);

    /* Polygons of the middle slice: asking with no buffers gives the sizes. */
    size_t n_polygons = 0, n_points = 0;
    size_t z = dims[2] / 2;
    CHECK_STATUS(halo_mask_slice_polygons(mask, z, NULL, 0, NULL, 0, &n_polygons, &n_points),
                 HALO_STATUS_BUFFER_TOO_SMALL);
    CHECK(n_polygons >= 1 && n_points >= 4);
    double *points = malloc(3 * n_points * sizeof(double));
    size_t *counts = malloc(n_polygons * sizeof(size_t));
    CHECK_OK(halo_mask_slice_polygons(mask, z, points, 3 * n_points, counts, n_polygons,
                                      &n_polygons, &n_points));
    size_t *slices = malloc(n_polygons * sizeof(size_t));
    for (size_t i = 0; i < n_polygons; i++) slices[i] = z;
    HaloVolume *refilled = NULL;
    CHECK_OK(halo_mask_from_polygons(mask, points, 3 * n_points, counts, slices, n_polygons,
                                     &refilled));
    float *r = data_of(refilled);
    size_t plane = dims[0] * dims[1];
    bool exact = true;
    for (size_t i = 0; i < plane; i++) exact = exact && r[z * plane + i] == m[z * plane + i];
    CHECK(exact);

    /* DICOM outputs, written atomically; an existing folder is refused. */
    CHECK_OK(halo_result_write_dicom(result, series_dir, NULL, out_dir, 0.1, false));
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/rtstruct.dcm", out_dir);
    CHECK(stat(path, &st) == 0 && st.st_size > 1000);
    snprintf(path, sizeof path, "%s/uncertainty-Prostate", out_dir);
    CHECK(stat(path, &st) == 0 && S_ISDIR(st.st_mode));
    CHECK_STATUS(halo_result_write_dicom(result, series_dir, NULL, out_dir, 0.1, false),
                 HALO_STATUS_INVALID_ARGUMENT);

    /* Comparison of the mask with itself and with its refilled slice. */
    HaloComparison c;
    CHECK_OK(halo_compare(mask, mask, 1.0, HALO_BOUNDARY_SURFEL, &c));
    CHECK(c.dice == 1.0 && c.hausdorff == 0.0 && c.added_voxels == 0);
    CHECK_OK(halo_compare(mask, refilled, 1.0, HALO_BOUNDARY_VOXEL, &c));
    CHECK(c.dice < 1.0 && c.removed_voxels == 0 && c.added_voxels > 0);
    CHECK(c.boundary == HALO_BOUNDARY_VOXEL);
    uint64_t added[5], removed[5];
    CHECK_OK(halo_edit_histogram(mask, refilled, unc, 0.1, 5, added, removed));
    uint64_t total = 0;
    for (int i = 0; i < 5; i++) total += added[i] + removed[i];
    CHECK(total == c.added_voxels);

    free(l); free(l2); free(m); free(u); free(r); free(points); free(counts); free(slices);
    free(pixels);
    halo_volume_free(labels); halo_volume_free(labels2); halo_volume_free(mask);
    halo_volume_free(unc); halo_volume_free(refilled);
    halo_result_free(result); halo_result_free(result2);
    halo_model_free(model);
    halo_volume_free(copy);
    halo_volume_free(image);
}

static void cancel_and_misuse(void) {
    HaloVolume *image = NULL;
    CHECK_OK(halo_series_read(series_dir, NULL, &image));
    HaloModel *model = NULL;
    CHECK_OK(halo_model_open(model_dir, NULL, 1, &model));

    Progress progress = {0, 3, 0};
    HaloResult *result = (HaloResult *)0x1;
    CHECK_STATUS(halo_model_run(model, image, 0, on_progress, &progress, &result),
                 HALO_STATUS_CANCELLED);
    CHECK(result == (HaloResult *)0x1);
    CHECK(progress.calls == 3);

    CHECK_STATUS(halo_model_run(model, image, 2, NULL, NULL, &result), HALO_STATUS_INVALID_ARGUMENT);
    CHECK_STATUS(halo_model_run(NULL, image, 0, NULL, NULL, &result), HALO_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(halo_model_run(model, NULL, 0, NULL, NULL, &result), HALO_STATUS_NULL_ARGUMENT);
    CHECK_STATUS(halo_model_run(model, image, 0, NULL, NULL, NULL), HALO_STATUS_NULL_ARGUMENT);
    CHECK(result == (HaloResult *)0x1);

    char tiny[3];
    size_t needed = 0;
    CHECK_STATUS(halo_model_structure_name(model, 0, tiny, sizeof tiny, &needed),
                 HALO_STATUS_BUFFER_TOO_SMALL);
    CHECK(needed == strlen("Prostate") + 1);
    CHECK_STATUS(halo_model_structure_name(model, 7, NULL, 0, NULL), HALO_STATUS_INVALID_ARGUMENT);

    HaloModel *bad = (HaloModel *)0x1;
    CHECK_STATUS(halo_model_open("/nonexistent/model", NULL, 1, &bad), HALO_STATUS_MODEL);
    CHECK(bad == (HaloModel *)0x1);
    char msg[512];
    halo_last_error_message(msg, sizeof msg, NULL);
    CHECK(strstr(msg, "/nonexistent/model") != NULL);

    CHECK_OK(halo_model_free(NULL));
    CHECK_OK(halo_result_free(NULL));
    halo_model_free(model);
    halo_volume_free(image);
}

typedef struct {
    HaloModel *model; /* shared, or NULL to open one's own */
    const HaloVolume *image;
    float first_label_sum;
    HaloStatus status;
} Job;

static void *worker(void *arg) {
    Job *job = arg;
    HaloModel *own = NULL;
    HaloModel *model = job->model;
    if (model == NULL) {
        job->status = halo_model_open(model_dir, "cpu", 1, &own);
        if (job->status != HALO_STATUS_OK) return NULL;
        model = own;
    }
    HaloResult *result = NULL;
    job->status = halo_model_run(model, job->image, 0, NULL, NULL, &result);
    if (job->status == HALO_STATUS_OK) {
        HaloVolume *labels = NULL;
        halo_result_volume(result, HALO_MAP_LABELS, 0, &labels);
        float *l = data_of(labels);
        for (size_t i = 0; i < count(labels); i++) job->first_label_sum += l[i];
        free(l);
        halo_volume_free(labels);
        halo_result_free(result);
    }
    halo_model_free(own);
    return NULL;
}

static void threads(void) {
    HaloVolume *image = NULL;
    CHECK_OK(halo_series_read(series_dir, NULL, &image));
    HaloModel *shared = NULL;
    CHECK_OK(halo_model_open(model_dir, "cpu", 1, &shared));

    /* Two threads with their own handles, two sharing one (serialised). */
    Job jobs[4] = {{NULL, image, 0, 0}, {NULL, image, 0, 0},
                   {shared, image, 0, 0}, {shared, image, 0, 0}};
    int n = quick ? 3 : 4; /* quick: one own handle, two sharing one */
    if (quick) jobs[1] = jobs[3];
    pthread_t t[4];
    for (int i = 0; i < n; i++) pthread_create(&t[i], NULL, worker, &jobs[i]);
    for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < n; i++) {
        CHECK(jobs[i].status == HALO_STATUS_OK);
        CHECK(jobs[i].first_label_sum == jobs[0].first_label_sum);
    }
    CHECK(jobs[0].first_label_sum > 0);
    halo_model_free(shared);
    halo_volume_free(image);
}

int main(int argc, char **argv) {
    if (argc != 4 && !(argc == 5 && strcmp(argv[4], "quick") == 0)) {
        fprintf(stderr, "usage: %s SERIES_FOLDER MODEL_FOLDER OUT_FOLDER [quick]\n", argv[0]);
        return 2;
    }
    quick = argc == 5;
    series_dir = argv[1];
    model_dir = argv[2];
    out_dir = argv[3];
    end_to_end();
    cancel_and_misuse();
    if (!quick) threads();
    return summary(quick ? "C ABI model (quick)" : "C ABI model");
}
