// dist.h: data-parallel training over MPI ranks (make mpi), and the single-rank stand-ins every other
// build uses, so the trainer calls the same functions either way.

#pragma once
#include "common.h"  // defines: failf, mallocCheck

// ---------------------------------------------------------------------------- distributed (MPI)
// Built by `make mpi` (-DUSE_MPI, with mpicc); the default build has none of it. Every process (rank) holds
// the whole model and trains on its share of each global batch: rank r takes rows r*B .. r*B+B-1 of the
// batch a single process would read with --batch N*B. Gradients are summed with MPI_Allreduce before
// clipping and the update, each rank's loss weighted by its share of the global targets (as gradient
// accumulation does), so N ranks with --batch B take the steps of one process with --batch N*B, up to the
// order of the sums. Only rank 0 writes logs, checkpoints and plots. With --zero 1 (ZeRO stage 1), rank r
// keeps AdamW state only for its 1/N of the trainable floats, updates those, and the updated slices are
// gathered to every rank.
#ifdef USE_MPI
#include <mpi.h>
static int dist_rank = 0, dist_world = 1, dist_finalized = 0;

// exit() anywhere (a bad file on one rank, say) takes every rank down instead of leaving them waiting
static void dist_exit_handler(void) {
    if (!dist_finalized) MPI_Abort(MPI_COMM_WORLD, 1);
}
static void dist_init(int* argc, char*** argv) {
    MPI_Init(argc, argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &dist_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &dist_world);
    dist_rank_for_errors = dist_rank;
    atexit(dist_exit_handler);
}
static void dist_finalize(void) {
    dist_finalized = 1;
    MPI_Finalize();
}
static void dist_sum_floats(float* x, size_t n) {
    for (size_t off = 0; off < n; off += 1 << 30) {  // MPI counts are int
        int c = (int)(n - off < (1u << 30) ? n - off : 1u << 30);
        MPI_Allreduce(MPI_IN_PLACE, x + off, c, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
}
static void dist_sum_doubles(double* x, size_t n) {
    MPI_Allreduce(MPI_IN_PLACE, x, (int)n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}
// Fails on every rank unless all ranks hold the same bytes (their flags, their model's config).
static void dist_check_same(const void* data, size_t n, const char* what) {
    uint64_t h = 1469598103934665603ull;  // FNV-1a
    for (size_t i = 0; i < n; i++) h = (h ^ ((const unsigned char*)data)[i]) * 1099511628211ull;
    unsigned long long lo = h, hi = h;
    MPI_Allreduce(MPI_IN_PLACE, &lo, 1, MPI_UNSIGNED_LONG_LONG, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &hi, 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, MPI_COMM_WORLD);
    if (lo != hi) {
        dist_rank_for_errors = 0;  // every rank knows; rank 0 says it
        if (dist_rank == 0) failf("start every rank with the same flags and files", "ranks disagree on %s", what);
        MPI_Barrier(MPI_COMM_WORLD);
        exit(1);
    }
}
// Every rank holds [lo_r, hi_r) of x (the ranks' ranges tile [0, n)); afterwards every rank holds all of x.
static void dist_allgather_ranges(float* x, size_t n) {
    int* counts = (int*)mallocCheck((size_t)dist_world * sizeof(int));
    int* displs = (int*)mallocCheck((size_t)dist_world * sizeof(int));
    for (int r = 0; r < dist_world; r++) {
        displs[r] = (int)(n * r / dist_world);
        counts[r] = (int)(n * (r + 1) / dist_world) - displs[r];
    }
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, x, counts, displs, MPI_FLOAT, MPI_COMM_WORLD);
    free(counts);
    free(displs);
}
// Rank 0 receives every rank's shard [lo_r, hi_r) of a length-n array into full (rank 0 only).
static void dist_gather_to_root(float* full, const float* shard, size_t n) {
    int* counts = (int*)mallocCheck((size_t)dist_world * sizeof(int));
    int* displs = (int*)mallocCheck((size_t)dist_world * sizeof(int));
    for (int r = 0; r < dist_world; r++) {
        displs[r] = (int)(n * r / dist_world);
        counts[r] = (int)(n * (r + 1) / dist_world) - displs[r];
    }
    MPI_Gatherv(shard, counts[dist_rank], MPI_FLOAT, full, counts, displs, MPI_FLOAT, 0, MPI_COMM_WORLD);
    free(counts);
    free(displs);
}
#else
static const int dist_rank = 0, dist_world = 1;
static void dist_init(int* argc, char*** argv) { (void)argc, (void)argv; }
static void dist_finalize(void) {}
static void dist_sum_floats(float* x, size_t n) { (void)x, (void)n; }
static void dist_sum_doubles(double* x, size_t n) { (void)x, (void)n; }
static void dist_check_same(const void* data, size_t n, const char* what) { (void)data, (void)n, (void)what; }
static void dist_allgather_ranges(float* x, size_t n) { (void)x, (void)n; }
static void dist_gather_to_root(float* full, const float* shard, size_t n) { memcpy(full, shard, n * sizeof(float)); }
#endif
// This rank's share [lo, hi) of n items.
static size_t dist_lo(size_t n) { return n * (size_t)dist_rank / (size_t)dist_world; }
static size_t dist_hi(size_t n) { return n * (size_t)(dist_rank + 1) / (size_t)dist_world; }
