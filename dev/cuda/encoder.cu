// dev/cuda/encoder.cu: train.cu's encoder_forward / encoder_backward against model.h's, then timed. The
// backward's time includes its host step (copy the ids back, group positions by token, upload the groups).
#include "common.h"

template <typename floatX>
static void run(const char* prec, double tol) {
    int bf = sizeof(floatX) == 2;
    const int B = small_shapes ? 3 : 8, T = small_shapes ? 37 : 1024, C = small_shapes ? 70 : 768, V = small_shapes ? 50 : 50257;
    size_t BT = (size_t)B * T, xs = sizeof(floatX);
    int* inp = (int*)mallocCheck(BT * sizeof(int));
    int common = V < 1000 ? V : 1000;  // two thirds of the ids from the 1000 most common: many repeats, as in text
    for (size_t i = 0; i < BT; i++) inp[i] = (int)(random_u32(&bench_rng) % (uint32_t)(i % 3 ? common : V));
    float *wte = rand_host((size_t)V * C, 1, bf), *wpe = rand_host((size_t)T * C, 1, bf), *dout = rand_host(BT * C, 1, bf);
    float *out = zeros_host(BT * C), *dwte = zeros_host((size_t)V * C), *dwpe = zeros_host((size_t)T * C);
    double cf = cpu_ms([&] { encoder_forward(out, inp, wte, wpe, B, T, C); });
    double cb = cpu_ms([&] { encoder_backward(dwte, dwpe, dout, inp, B, T, C); });
    floatX *d_wte = to_dev<floatX>(wte, (size_t)V * C), *d_wpe = to_dev<floatX>(wpe, (size_t)T * C);
    floatX *d_dout = to_dev<floatX>(dout, BT * C), *d_out;
    float *d_dwte = to_dev<float>(dwte, (size_t)V * C), *d_dwpe = to_dev<float>(dwpe, (size_t)T * C);
    int* d_inp;
    cudaCheck(cudaMemset(d_dwte, 0, (size_t)V * C * 4));  // the CPU's gradients started at zero
    cudaCheck(cudaMemset(d_dwpe, 0, (size_t)T * C * 4));
    cudaCheck(cudaMalloc(&d_out, BT * C * xs));
    cudaCheck(cudaMalloc(&d_inp, BT * 4));
    cudaCheck(cudaMemcpy(d_inp, inp, BT * 4, cudaMemcpyHostToDevice));
    gpu::encoder_forward(d_out, d_inp, d_wte, d_wpe, B, T, C);
    gpu::encoder_backward(d_dwte, d_dwpe, d_dout, d_inp, B, T, C);
    double ef = err_vs(d_out, out, BT * C), eb = fmax(err_vs(d_dwte, dwte, (size_t)V * C), err_vs(d_dwpe, dwpe, (size_t)T * C));
    double tf = time_ms([&] { gpu::encoder_forward(d_out, d_inp, d_wte, d_wpe, B, T, C); });
    double tb = time_ms([&] { gpu::encoder_backward(d_dwte, d_dwpe, d_dout, d_inp, B, T, C); });
    bench_line("encoder_forward", prec, ef, tol, tf, 3.0 * BT * C * xs, "GB/s", cf);
    bench_line("encoder_backward", prec, eb, tol, tb, 2.0 * BT * C * xs + 8.0 * BT * C, "GB/s", cb);
    cudaFree(d_wte); cudaFree(d_wpe); cudaFree(d_dout); cudaFree(d_out); cudaFree(d_dwte); cudaFree(d_dwpe); cudaFree(d_inp);
    free(inp); free(wte); free(wpe); free(dout); free(out); free(dwte); free(dwpe);
}

int main(int argc, char** argv) {
    bench_init(argc, argv);
    run<float>("fp32", 1e-5);
    run<bf16>("bf16", 3e-2);
    return bench_exit();
}
