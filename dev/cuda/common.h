// dev/cuda/common.h: what every per-kernel benchmark here shares. Each program runs one kernel family of
// train.cu at GPT-2 124M shapes (or tiny ones with the argument "small"), first against model.h's CPU kernel
// (correctness: the worst error relative to the reference's scale, as test_gpt.c measures it), then times it.
// Build one:  nvcc -O3 -std=c++17 -arch=sm_90 -Xcompiler -fopenmp -o layernorm layernorm.cu -lcublas -lgomp
#pragma once
#define TRAIN_CU_NO_MAIN
#include "../../train.cu"

using gpu::bf16;

static uint64_t bench_rng = 1234;
static int small_shapes = 0;  // argv[1] == "small": tiny shapes (quick check, or the CPU emulator)

static void bench_init(int argc, char** argv) {
    small_shapes = argc > 1 && !strcmp(argv[1], "small");
    gpu::device_init();
    printf("device: %s, %s shapes\n", gpu::device_prop.name, small_shapes ? "small" : "GPT-2 124M");
}

// Random normal values; rounded to bf16 when the bf16 kernel is measured, so both sides read the same inputs.
static float* rand_host(size_t n, float scale, int round_bf16) {
    float* x = (float*)mallocCheck(n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        x[i] = scale * random_normal(&bench_rng);
        if (round_bf16) x[i] = __bfloat162float(__float2bfloat16(x[i]));
    }
    return x;
}
template <typename floatX>
static floatX* to_dev(const float* h, size_t n) {
    floatX* tmp = (floatX*)mallocCheck(n * sizeof(floatX));
    for (size_t i = 0; i < n; i++) tmp[i] = gpu::from_float<floatX>(h[i]);
    floatX* d;
    cudaCheck(cudaMalloc(&d, n * sizeof(floatX)));
    cudaCheck(cudaMemcpy(d, tmp, n * sizeof(floatX), cudaMemcpyHostToDevice));
    free(tmp);
    return d;
}
// Worst |got - ref| / (|ref| + rms(ref)) over a device tensor, test_gpt.c's measure.
template <typename floatX>
static double err_vs(const floatX* d, const float* ref, size_t n) {
    floatX* tmp = (floatX*)mallocCheck(n * sizeof(floatX));
    cudaCheck(cudaMemcpy(tmp, d, n * sizeof(floatX), cudaMemcpyDeviceToHost));
    double ss = 0.0, worst = 0.0;
    for (size_t i = 0; i < n; i++) ss += (double)ref[i] * ref[i];
    double rms = sqrt(ss / (n ? n : 1));
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)gpu::to_float(tmp[i]) - ref[i]) / (fabs(ref[i]) + rms + 1e-30);
        if (!(e <= worst)) worst = isfinite(e) ? e : INFINITY;
    }
    free(tmp);
    return worst;
}
// Mean milliseconds per call of f over reps calls, after one warmup call (cudaEvents around the batch).
template <typename F>
static double time_ms(F f, int reps = 20) {
    f();
    cudaCheck(cudaDeviceSynchronize());
    cudaEvent_t e0, e1;
    cudaCheck(cudaEventCreate(&e0));
    cudaCheck(cudaEventCreate(&e1));
    cudaCheck(cudaEventRecord(e0, 0));
    for (int r = 0; r < reps; r++) f();
    cudaCheck(cudaEventRecord(e1, 0));
    cudaCheck(cudaEventSynchronize(e1));
    float ms;
    cudaCheck(cudaEventElapsedTime(&ms, e0, e1));
    cudaCheck(cudaEventDestroy(e0));
    cudaCheck(cudaEventDestroy(e1));
    return ms / reps;
}
static int bench_failures = 0;
// One line: correctness first (worst error against the CPU, and the tolerance it is held to), then speed.
// rate is bytes or FLOPs per call; unit says which ("GB/s" or "TFLOP/s").
static void bench_line(const char* what, const char* prec, double err, double tol, double ms, double rate,
                       const char* unit, double cpu_ms) {
    int ok = err <= tol;
    bench_failures += !ok;
    double r = !strcmp(unit, "GB/s") ? rate / (ms * 1e6) : rate / (ms * 1e9);
    printf("%-28s %-5s err %.1e (tol %.0e) %s | %9.4f ms | %8.1f %-7s | CPU %9.2f ms | %6.0fx\n", what, prec, err, tol,
           ok ? "OK  " : "FAIL", ms, r, unit, cpu_ms, cpu_ms / ms);
}
// Milliseconds of one call of f on the host (the CPU reference; it is slow, so once).
template <typename F>
static double cpu_ms(F f) {
    double t0 = now_seconds();
    f();
    return 1000.0 * (now_seconds() - t0);
}
static float* zeros_host(size_t n) { return (float*)callocCheck(n, sizeof(float)); }
static int bench_exit(void) {
    printf("%s\n", bench_failures ? "FAIL: some kernels disagree with the CPU" : "all kernels agree with the CPU");
    return bench_failures ? 1 : 0;
}
