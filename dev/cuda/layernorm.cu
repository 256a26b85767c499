// dev/cuda/layernorm.cu: train.cu's layernorm_forward / layernorm_backward against model.h's, then timed.
// Memory-bound: the figure of merit is GB/s (H200 HBM3e peak is ~4.8 TB/s).
#include "common.h"

template <typename floatX>
static void run(const char* prec, double tol) {
    int bf = sizeof(floatX) == 2;
    size_t N = small_shapes ? 301 : 8 * 1024, xs = sizeof(floatX);
    int C = small_shapes ? 70 : 768;
    float *x = rand_host(N * C, 1, bf), *w = rand_host(C, 1, bf), *b = rand_host(C, 1, bf), *dy = rand_host(N * C, 1, bf);
    float *y = zeros_host(N * C), *mean = zeros_host(N), *rstd = zeros_host(N), *dx = zeros_host(N * C);
    float *dw = zeros_host(C), *db = zeros_host(C);
    double cf = cpu_ms([&] { layernorm_forward(y, mean, rstd, x, w, b, N, C); });
    double cb = cpu_ms([&] { layernorm_backward(dx, dw, db, dy, x, w, mean, rstd, N, C); });
    floatX *d_x = to_dev<floatX>(x, N * C), *d_w = to_dev<floatX>(w, C), *d_b = to_dev<floatX>(b, C);
    floatX *d_dy = to_dev<floatX>(dy, N * C), *d_y = to_dev<floatX>(y, N * C), *d_dx = to_dev<floatX>(dx, N * C);
    float *d_mean = to_dev<float>(mean, N), *d_rstd = to_dev<float>(rstd, N);
    float *d_dw = to_dev<float>(dw, C), *d_db = to_dev<float>(db, C);
    cudaCheck(cudaMemset(d_dx, 0, N * C * xs));
    cudaCheck(cudaMemset(d_dw, 0, C * 4));
    cudaCheck(cudaMemset(d_db, 0, C * 4));
    gpu::layernorm_forward(d_y, d_mean, d_rstd, d_x, d_w, d_b, N, C);
    gpu::layernorm_backward(d_dx, d_dw, d_db, d_dy, d_x, d_w, d_mean, d_rstd, N, C);
    double ef = fmax(err_vs(d_y, y, N * C), fmax(err_vs(d_mean, mean, N), err_vs(d_rstd, rstd, N)));
    double eb = fmax(err_vs(d_dx, dx, N * C), fmax(err_vs(d_dw, dw, C), err_vs(d_db, db, C)));
    double tf = time_ms([&] { gpu::layernorm_forward(d_y, d_mean, d_rstd, d_x, d_w, d_b, N, C); });
    double tb = time_ms([&] { gpu::layernorm_backward(d_dx, d_dw, d_db, d_dy, d_x, d_w, d_mean, d_rstd, N, C); });
    bench_line("layernorm_forward", prec, ef, tol, tf, 2.0 * N * C * xs, "GB/s", cf);       // read x, write y
    bench_line("layernorm_backward", prec, eb, tol, tb, 5.0 * N * C * xs, "GB/s", cb);      // dy, x, dx twice; dy, x again
    cudaFree(d_x); cudaFree(d_w); cudaFree(d_b); cudaFree(d_dy); cudaFree(d_y); cudaFree(d_dx);
    cudaFree(d_mean); cudaFree(d_rstd); cudaFree(d_dw); cudaFree(d_db);
    free(x); free(w); free(b); free(dy); free(y); free(mean); free(rstd); free(dx); free(dw); free(db);
}

int main(int argc, char** argv) {
    bench_init(argc, argv);
    run<float>("fp32", 1e-5);
    run<bf16>("bf16", 3e-2);
    return bench_exit();
}
