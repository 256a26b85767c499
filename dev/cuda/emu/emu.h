// dev/cuda/emu/emu.h: force-included (g++ -include) before train.cu when it is built for the CPU emulator.
// A CPU emulator for checking train.cu's CUDA code without a GPU: every CUDA thread of a block is a fiber
// (ucontext), blocks run one after another, __syncthreads and warp shuffles are barriers (round-robin
// scheduling: every live thread of the block runs to its next barrier before any passes it), cuBLAS is a plain
// column-major loop. It checks indexing, launch shapes, barriers' placement and the math; it cannot check
// the memory model, races between blocks, performance, or cuBLAS itself.
#pragma once
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cublas_v2.h>
#include <functional>
#include <stdint.h>
#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#define __global__
#define __device__
#define __host__
#define __shared__ static
namespace emu {
struct Fiber;
extern Fiber* cur;
uint3& thread_idx();
extern uint3 block_idx;
extern dim3 block_dim, grid_dim;
void yield();
extern double slots[1024];
int linear_tid();
void launch(dim3 grid, dim3 block, std::function<void()> f);
template <typename V> V shfl_xor(V v, int o) {
    int me = linear_tid();
    slots[me] = (double)v;
    yield();
    V r = (V)slots[(me & ~31) | ((me & 31) ^ o)];
    yield();
    return r;
}
}  // namespace emu
#define threadIdx (emu::thread_idx())
#define blockIdx (emu::block_idx)
#define blockDim (emu::block_dim)
#define gridDim (emu::grid_dim)
#define __syncthreads() emu::yield()
#define __shfl_xor_sync(mask, v, o) emu::shfl_xor((v), (o))
static inline int atomicAdd(int* p, int v) { int old = *p; *p += v; return old; }
