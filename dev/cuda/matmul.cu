// dev/cuda/matmul.cu: train.cu's matmul_forward / matmul_backward (cuBLAS) against model.h's, then timed at
// each of GPT-2's matmul shapes in fp32, tf32 and bf16, next to the bf16 ceiling MFU is measured against.
// Correctness is checked on the first R rows (the CPU would take minutes on the LM head at full size; every
// output row depends only on its input row, and the weight gradient is checked on R rows too).
#include "common.h"

template <typename floatX>
static void run(const char* prec, double tol, cublasComputeType_t fp32_mode) {
    gpu::fp32_compute = fp32_mode;
    int bf = sizeof(floatX) == 2;
    const int B = 8, T = 1024, C = small_shapes ? 64 : 768, Vp = small_shapes ? 320 : 50304;
    const size_t N = small_shapes ? 300 : (size_t)B * T, R = N < 256 ? N : 256;
    const struct { const char* name; int in, out; } shapes[] = {
        {"qkv     (C -> 3C)", C, 3 * C}, {"attproj (C -> C)", C, C}, {"fc      (C -> 4C)", C, 4 * C},
        {"fcproj  (4C -> C)", 4 * C, C}, {"lm head (C -> Vp)", C, Vp}};
    for (int s = 0; s < 5; s++) {
        int IC = shapes[s].in, OC = shapes[s].out;
        float *inp = rand_host(N * IC, 1, bf), *w = rand_host((size_t)OC * IC, 0.05f, bf), *bias = rand_host(OC, 1, bf);
        float *dout = rand_host(N * OC, 1, bf), *out = zeros_host(R * OC), *dinp = zeros_host(R * IC);
        float *dw = zeros_host((size_t)OC * IC), *db = zeros_host(OC);
        int has_bias = s < 4;  // the LM head has none
        double cf = cpu_ms([&] { matmul_forward(out, inp, w, has_bias ? bias : NULL, R, IC, OC); }) * N / R;
        double cb = cpu_ms([&] { matmul_backward(dinp, dw, has_bias ? db : NULL, dout, inp, w, R, IC, OC); }) * N / R;
        floatX *d_inp = to_dev<floatX>(inp, N * IC), *d_w = to_dev<floatX>(w, (size_t)OC * IC), *d_bias = to_dev<floatX>(bias, OC);
        floatX *d_dout = to_dev<floatX>(dout, N * OC), *d_out, *d_dinp;
        float *d_dw, *d_db;
        cudaCheck(cudaMalloc(&d_out, N * OC * sizeof(floatX)));
        cudaCheck(cudaMalloc(&d_dinp, N * IC * sizeof(floatX)));
        cudaCheck(cudaMalloc(&d_dw, (size_t)OC * IC * 4));
        cudaCheck(cudaMalloc(&d_db, OC * 4));
        cudaCheck(cudaMemset(d_dinp, 0, N * IC * sizeof(floatX)));
        cudaCheck(cudaMemset(d_dw, 0, (size_t)OC * IC * 4));
        cudaCheck(cudaMemset(d_db, 0, OC * 4));
        gpu::matmul_forward(d_out, d_inp, d_w, has_bias ? d_bias : NULL, R, IC, OC);
        gpu::matmul_backward(d_dinp, d_dw, has_bias ? d_db : NULL, d_dout, d_inp, d_w, R, IC, OC);
        double ef = err_vs(d_out, out, R * OC);
        double eb = fmax(err_vs(d_dinp, dinp, R * IC), err_vs(d_dw, dw, (size_t)OC * IC));
        if (has_bias) eb = fmax(eb, err_vs(d_db, db, OC));
        double tf = time_ms([&] { gpu::matmul_forward(d_out, d_inp, d_w, has_bias ? d_bias : NULL, N, IC, OC); }, 10);
        double tb = time_ms([&] { gpu::matmul_backward(d_dinp, d_dw, has_bias ? d_db : NULL, d_dout, d_inp, d_w, N, IC, OC); }, 10);
        char what[64];
        snprintf(what, sizeof what, "fwd %s", shapes[s].name);
        bench_line(what, prec, ef, tol, tf, 2.0 * N * IC * OC, "TFLOP/s", cf);
        snprintf(what, sizeof what, "bwd %s", shapes[s].name);
        bench_line(what, prec, eb, tol, tb, 4.0 * N * IC * OC, "TFLOP/s", cb);
        cudaFree(d_inp); cudaFree(d_w); cudaFree(d_bias); cudaFree(d_dout); cudaFree(d_out); cudaFree(d_dinp); cudaFree(d_dw); cudaFree(d_db);
        free(inp); free(w); free(bias); free(dout); free(out); free(dinp); free(dw); free(db);
    }
    gpu::fp32_compute = CUBLAS_COMPUTE_32F;
}

int main(int argc, char** argv) {
    bench_init(argc, argv);
    run<float>("fp32", 1e-5, CUBLAS_COMPUTE_32F);
    run<float>("tf32", 1e-2, CUBLAS_COMPUTE_32F_FAST_TF32);  // TF32 keeps 10 mantissa bits: ~1e-3 relative
    run<bf16>("bf16", 3e-2, CUBLAS_COMPUTE_32F);
    if (!small_shapes) printf("bf16 matmul ceiling (8192^3, best of 9): %.1f TFLOP/s\n", measure_bf16_matmul_tflops());
    return bench_exit();
}
