// dev/cuda/gelu_residual.cu: train.cu's elementwise kernels (gelu forward/backward, residual forward) against
// model.h's, then timed at the MLP's hidden size (B*T*4C elements). Memory-bound: GB/s.
#include "common.h"

template <typename floatX>
static void run(const char* prec, double tol) {
    int bf = sizeof(floatX) == 2;
    size_t N = small_shapes ? 1000 : (size_t)8 * 1024 * 4 * 768, xs = sizeof(floatX);
    float *x = rand_host(N, 2, bf), *x2 = rand_host(N, 1, bf), *dy = rand_host(N, 1, bf);
    float *y = zeros_host(N), *dx = zeros_host(N), *r = zeros_host(N);
    double cg = cpu_ms([&] { gelu_forward(y, x, N); }), cgb = cpu_ms([&] { gelu_backward(dx, x, dy, N); });
    double cr = cpu_ms([&] { residual_forward(r, x, x2, N); });
    floatX *d_x = to_dev<floatX>(x, N), *d_x2 = to_dev<floatX>(x2, N), *d_dy = to_dev<floatX>(dy, N);
    floatX *d_y = to_dev<floatX>(y, N), *d_dx = to_dev<floatX>(dx, N), *d_r = to_dev<floatX>(r, N);
    cudaCheck(cudaMemset(d_dx, 0, N * xs));  // the CPU's dx started at zero (it holds its result now)
    gpu::gelu_forward(d_y, d_x, N);
    gpu::gelu_backward(d_dx, d_x, d_dy, N);
    gpu::residual_forward(d_r, d_x, d_x2, N);
    double eg = err_vs(d_y, y, N), egb = err_vs(d_dx, dx, N), er = err_vs(d_r, r, N);
    double tg = time_ms([&] { gpu::gelu_forward(d_y, d_x, N); });
    double tgb = time_ms([&] { gpu::gelu_backward(d_dx, d_x, d_dy, N); });
    double tr = time_ms([&] { gpu::residual_forward(d_r, d_x, d_x2, N); });
    bench_line("gelu_forward", prec, eg, tol, tg, 2.0 * N * xs, "GB/s", cg);
    bench_line("gelu_backward", prec, egb, tol, tgb, 4.0 * N * xs, "GB/s", cgb);
    bench_line("residual_forward", prec, er, tol, tr, 3.0 * N * xs, "GB/s", cr);
    cudaFree(d_x); cudaFree(d_x2); cudaFree(d_dy); cudaFree(d_y); cudaFree(d_dx); cudaFree(d_r);
    free(x); free(x2); free(dy); free(y); free(dx); free(r);
}

int main(int argc, char** argv) {
    bench_init(argc, argv);
    run<float>("fp32", 1e-5);
    run<bf16>("bf16", 3e-2);
    return bench_exit();
}
