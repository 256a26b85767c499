// dev/bench_gemm.c: GFLOP/s of kernels.h's gemm on the products of a GPT-2 124M training step at B=4 T=64
// (and the micro-kernel alone, operands in L1), to compare register tiles and blocking side by side.
//   cc -O3 -march=native -ffp-contract=fast -fopenmp -o bench_gemm dev/bench_gemm.c -lm && ./bench_gemm
// Build it with other -march flags (e.g. -mno-avx512f) to time another ISA's tile on this machine.
#include <time.h>
#include "../model.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}
static void fill(float* p, size_t n) {
    for (size_t i = 0; i < n; i++) p[i] = (float)((i * 2654435761u) % 1000) * 1e-3f - 0.5f;
}

int main(int argc, char** argv) {
    int BT = argc > 1 ? atoi(argv[1]) : 256, reps = argc > 2 ? atoi(argv[2]) : 5;
    printf("tile: %s, BT=%d\n", gemm_tile, BT);
    // micro-kernel alone: one packed A and B panel, kc = KC, called repeatedly on a C tile in L1
    {
        float *Ap = mallocCheck(GEMM_MR * GEMM_KC * 4), *Bp = mallocCheck(GEMM_NR * GEMM_KC * 4);
        float Cm[GEMM_MR * GEMM_NR];
        // through a volatile pointer: not inlined, so the compiler cannot hoist the (loop-invariant) product
        void (*volatile micro)(int, const float*, const float*, float*, size_t, int, int) = gemm_micro;
        fill(Ap, GEMM_MR * GEMM_KC), fill(Bp, GEMM_NR * GEMM_KC), memset(Cm, 0, sizeof Cm);
        long n = 200000000L / (GEMM_MR * GEMM_NR * GEMM_KC) + 1;
        double best = 0;
        for (int r = 0; r < 5; r++) {
            double t0 = now();
            for (long i = 0; i < n; i++) micro(GEMM_KC, Ap, Bp, Cm, GEMM_NR, GEMM_MR, GEMM_NR);
            double g = 2.0 * GEMM_MR * GEMM_NR * GEMM_KC * n / (now() - t0) / 1e9;
            if (g > best) best = g;
        }
        printf("micro-kernel alone (1 thread): %.1f GFLOP/s (C[0]=%g)\n", best, Cm[0]);
        free(Ap), free(Bp);
    }
    const struct { const char* name; int OC, C; } lin[] = {
        {"qkv", 2304, 768}, {"attproj", 768, 768}, {"fc", 3072, 768}, {"fcproj", 768, 3072}, {"lmhead", 50304, 768}};
    double tf = 0, tb = 0, ff = 0, fb = 0;
    for (int l = 0; l < 5; l++) {
        int OC = lin[l].OC, C = lin[l].C;
        float *inp = mallocCheck((size_t)BT * C * 4), *w = mallocCheck((size_t)OC * C * 4);
        float *out = mallocCheck((size_t)BT * OC * 4), *dinp = callocCheck((size_t)BT * C, 4);
        float *dw = callocCheck((size_t)OC * C, 4);
        fill(inp, (size_t)BT * C), fill(w, (size_t)OC * C);
        double bf = 1e30, bb = 1e30;
        for (int r = 0; r < reps; r++) {
            double t0 = now();
            matmul_forward(out, inp, w, NULL, BT, C, OC);
            double t1 = now();
            matmul_backward(dinp, dw, NULL, out, inp, w, BT, C, OC);
            double t2 = now();
            if (t1 - t0 < bf) bf = t1 - t0;
            if (t2 - t1 < bb) bb = t2 - t1;
        }
        double fl = 2.0 * BT * C * OC;
        printf("%-8s fwd %7.1f ms %6.1f GFLOP/s   bwd %7.1f ms %6.1f GFLOP/s\n", lin[l].name, 1e3 * bf,
               fl / bf / 1e9, 1e3 * bb, 2 * fl / bb / 1e9);
        int mult = l == 4 ? 1 : 12;  // 12 layers, one LM head
        tf += mult * bf, tb += mult * bb, ff += mult * fl, fb += mult * 2 * fl;
        free(inp), free(w), free(out), free(dinp), free(dw);
    }
    printf("all matmuls of a step: fwd %.0f ms (%.1f GFLOP/s), bwd %.0f ms (%.1f GFLOP/s), total %.0f ms\n",
           1e3 * tf, ff / tf / 1e9, 1e3 * tb, fb / tb / 1e9, 1e3 * (tf + tb));
    return 0;
}
