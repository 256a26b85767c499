// dev/cuda/crossentropy.cu: train.cu's crossentropy_forward / crossentropy_backward against model.h's, with
// ignored targets (-1) and GPT-2's padded vocabulary, then timed. Correctness on 64 rows, timing on B*T rows.
// The forward's time includes copying the per-row losses to the host for the mean (see train.cu, difference 5).
#include "common.h"

template <typename floatX>
static void run(const char* prec, double tol) {
    int bf = sizeof(floatX) == 2;
    const int V = small_shapes ? 500 : 50257, Vp = small_shapes ? 512 : 50304;
    const size_t N = small_shapes ? 40 : 8 * 1024, Nc = N < 64 ? N : 64;
    size_t xs = sizeof(floatX);
    float* logits = rand_host(N * Vp, 2, bf);
    int* targets = (int*)mallocCheck(N * sizeof(int));
    for (size_t i = 0; i < N; i++) targets[i] = i % 5 == 3 ? -1 : (int)(random_u32(&bench_rng) % V);
    float *probs = zeros_host(Nc * Vp), *losses = zeros_host(Nc), *dlogits = zeros_host(Nc * Vp);
    float mean = 0.0f;
    double cf = cpu_ms([&] { mean = crossentropy_forward(probs, losses, logits, targets, Nc, V, Vp); }) * N / Nc;
    double cb = cpu_ms([&] { crossentropy_backward(dlogits, probs, targets, Nc, V, Vp, 1.0f); }) * N / Nc;
    floatX *d_logits = to_dev<floatX>(logits, N * Vp), *d_probs, *d_dlogits;
    float* d_losses;
    int* d_targets;
    cudaCheck(cudaMalloc(&d_probs, N * Vp * xs));
    cudaCheck(cudaMalloc(&d_dlogits, N * Vp * xs));
    cudaCheck(cudaMalloc(&d_losses, N * 4));
    cudaCheck(cudaMalloc(&d_targets, N * 4));
    cudaCheck(cudaMemcpy(d_targets, targets, N * 4, cudaMemcpyHostToDevice));
    float d_mean = gpu::crossentropy_forward(d_probs, d_losses, d_logits, d_targets, Nc, V, Vp);
    gpu::crossentropy_backward(d_dlogits, d_probs, d_targets, Nc, V, Vp, 1.0f);
    double ef = fmax(fmax(err_vs(d_probs, probs, Nc * Vp), err_vs(d_losses, losses, Nc)), fabs(d_mean - mean) / fabs(mean));
    double eb = err_vs(d_dlogits, dlogits, Nc * Vp);
    double tf = time_ms([&] { gpu::crossentropy_forward(d_probs, d_losses, d_logits, d_targets, N, V, Vp); }, 5);
    double tb = time_ms([&] { gpu::crossentropy_backward(d_dlogits, d_probs, d_targets, N, V, Vp, 1.0f); }, 5);
    bench_line("crossentropy_forward", prec, ef, tol, tf, 3.0 * N * Vp * xs, "GB/s", cf);  // logits read twice, probs written
    bench_line("crossentropy_backward", prec, eb, tol, tb, 2.0 * N * Vp * xs, "GB/s", cb);
    cudaFree(d_logits); cudaFree(d_probs); cudaFree(d_dlogits); cudaFree(d_losses); cudaFree(d_targets);
    free(logits); free(targets); free(probs); free(losses); free(dlogits);
}

int main(int argc, char** argv) {
    bench_init(argc, argv);
    run<float>("fp32", 1e-5);
    run<bf16>("bf16", 3e-2);
    return bench_exit();
}
