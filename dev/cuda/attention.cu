// dev/cuda/attention.cu: train.cu's attention_forward / attention_backward (cuBLAS batched products per batch
// row + the causal softmax kernels) against model.h's, then timed. Correctness at B=1 (the CPU's attention is
// slow), timing at B=8. FLOPs counted as the model counts them: 4*B*NH*T*T*hs forward (two products over the
// full T x T square, causal masking not subtracted), twice that backward.
#include "common.h"

template <typename floatX>
static void run(const char* prec, double tol) {
    int bf = sizeof(floatX) == 2;
    const int T = small_shapes ? 37 : 1024, C = small_shapes ? 48 : 768, NH = small_shapes ? 4 : 12, B = small_shapes ? 2 : 8;
    const int Bc = 1;  // batch rows checked against the CPU
    size_t n = (size_t)B * T * C, na = (size_t)B * NH * T * T, nc = (size_t)Bc * T * C, nac = (size_t)Bc * NH * T * T;
    float *qkv = rand_host(3 * n, 1, bf), *dout = rand_host(n, 1, bf);
    float *out = zeros_host(nc), *att = zeros_host(nac), *dqkv = zeros_host(3 * nc);
    double cf = cpu_ms([&] { attention_forward(out, att, qkv, NULL, NULL, NULL, Bc, T, C, NH, NH, 0, 1, 0.0f, 0); }) * B / Bc;
    double cb = cpu_ms([&] { attention_backward(dqkv, NULL, NULL, dout, qkv, NULL, NULL, att, NULL, Bc, T, C, NH, NH, 0, 1, 0.0f, 0); }) * B / Bc;
    floatX *d_qkv = to_dev<floatX>(qkv, 3 * n), *d_dout = to_dev<floatX>(dout, n), *d_out, *d_att, *d_dqkv;
    cudaCheck(cudaMalloc(&d_out, n * sizeof(floatX)));
    cudaCheck(cudaMalloc(&d_att, na * sizeof(floatX)));
    cudaCheck(cudaMalloc(&d_dqkv, 3 * n * sizeof(floatX)));
    cudaCheck(cudaMemset(d_dqkv, 0, 3 * n * sizeof(floatX)));
    gpu::attention_forward(d_out, d_att, d_qkv, (floatX*)NULL, (floatX*)NULL, Bc, T, C, NH, 0, 0.0f, 0);
    gpu::attention_backward(d_dqkv, (float*)NULL, (float*)NULL, d_dout, d_qkv, (floatX*)NULL, (floatX*)NULL, d_att, Bc, T, C, NH, 0, 0.0f, 0);
    double ef = fmax(err_vs(d_out, out, nc), err_vs(d_att, att, nac)), eb = err_vs(d_dqkv, dqkv, 3 * nc);
    double tf = time_ms([&] { gpu::attention_forward(d_out, d_att, d_qkv, (floatX*)NULL, (floatX*)NULL, B, T, C, NH, 0, 0.0f, 0); }, 5);
    double tb = time_ms([&] { gpu::attention_backward(d_dqkv, (float*)NULL, (float*)NULL, d_dout, d_qkv, (floatX*)NULL, (floatX*)NULL, d_att, B, T, C, NH, 0, 0.0f, 0); }, 5);
    double flops = 4.0 * B * NH * (double)T * T * (C / NH);
    bench_line("attention_forward", prec, ef, tol, tf, flops, "TFLOP/s", cf);
    bench_line("attention_backward", prec, eb, tol, tb, 2 * flops, "TFLOP/s", cb);
    cudaFree(d_qkv); cudaFree(d_dout); cudaFree(d_out); cudaFree(d_att); cudaFree(d_dqkv);
    free(qkv); free(dout); free(out); free(att); free(dqkv);
}

int main(int argc, char** argv) {
    bench_init(argc, argv);
    run<float>("fp32", 1e-5);
    run<bf16>("bf16", 3e-2);
    return bench_exit();
}
