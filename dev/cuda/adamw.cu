// dev/cuda/adamw.cu: train.cu's gradient norm, clipping and AdamW step against model.h's, on a GPT-2 124M-
// sized model (random weights and gradients), then timed. Memory-bound: per parameter the step reads p, g, m,
// v and writes p, m, v (28 bytes; 30 with the bf16 weight copy). Clipping is deferred into the AdamW step
// (model.h's grad_scale), so the norm line times the norm alone.
#include "common.h"

static void run(gpu::Precision prec, double tol) {
    GPTConfig c = {};
    c.maxT = small_shapes ? 32 : 1024; c.V = small_shapes ? 500 : 50257; c.Vp = pad_vocab(c.V);
    c.L = small_shapes ? 2 : 12; c.NH = small_shapes ? 4 : 12; c.C = small_shapes ? 64 : 768;
    GPT h;
    gpt_build(&h, c);
    gpt_init_random(&h, &bench_rng);
    gpt_alloc_grads(&h);  // every slice trainable: num_trainable == num_parameters
    size_t n = h.num_trainable;
    float* g = rand_host(n, 1e-3f, 0);
    memcpy(h.grads_memory, g, n * 4);
    gpu::GPT d;
    gpu::gpt_from_host(&d, &h, prec);
    cudaCheck(cudaMalloc(&d.grads_memory, n * 4));
    cudaCheck(cudaMemcpy(d.grads_memory, g, n * 4, cudaMemcpyHostToDevice));
    free(g);
    AdamWConfig opt = {3e-4f, 0.9f, 0.95f, 1e-8f, 0.1f};
    float norm_c = 0.0f;
    double cn = cpu_ms([&] { norm_c = gpt_clip_grad_norm(&h, 0.5f); });
    double ca = cpu_ms([&] { gpt_adamw_update(&h, &opt, 1); });
    float norm_d = gpu::gpt_clip_grad_norm(&d, 0.5f);
    gpu::gpt_adamw_update(&d, &opt, 1);
    double en = fabs(norm_d - norm_c) / norm_c;
    double ea = fmax(err_vs(d.params_memory, h.params_memory, n), fmax(err_vs(d.m_memory, h.m_memory, n), err_vs(d.v_memory, h.v_memory, n)));
    double tn = time_ms([&] { gpu::gpt_grad_norm(&d); });
    int t = 2;
    double ta = time_ms([&] { gpu::gpt_adamw_update(&d, &opt, t++); });
    const char* p = gpu::precision_name(prec);
    bench_line("grad norm + clip", p, en, tol, tn, 4.0 * n, "GB/s", cn);
    bench_line("adamw", p, ea, tol, ta, (prec == gpu::PREC_BF16 ? 30.0 : 28.0) * n, "GB/s", ca);
    gpu::gpt_free(&d);
    gpt_free(&h);
}

int main(int argc, char** argv) {
    bench_init(argc, argv);
    run(gpu::PREC_FP32, 1e-5);  // fp32 state in both precisions: the same tolerance
    run(gpu::PREC_BF16, 1e-5);
    return bench_exit();
}
