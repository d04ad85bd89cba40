//===- DeviceSupport.cuh - What generated CUDA networks include -----------===//
//
// The one header the CUDA that dopac generates includes, so that a generated file holds only the
// network's own code: the batch calling convention (CudaSpec.h) and the helpers every generated
// kernel uses. warpSum adds a value over the 32 lanes of a warp (shuffles; the nests' row and dot
// reductions), gridSync is the grid-wide barrier between the stages of a step (the blocks working
// on one batch element share its buffers), and launchCooperative starts a step's kernel with as
// many blocks per batch element as fit on the device (at most 8), in chunks of the batch when the
// whole batch does not fit. Header-only, for nvcc.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dopa/cuda/CudaSpec.h"

#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace dopa {

/// The sum of v over the 32 lanes of a warp (every lane gets it).
template <class T> __device__ __forceinline__ T warpSum(T v) {
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

/// Wait for every block of the grid: the blocks of an element share its stages.
__device__ __forceinline__ void gridSync() { cooperative_groups::this_grid().sync(); }

/// Launch `kernel` cooperatively: `splits` blocks per batch element, as many as fit on the device
/// at once (at most 8); batches larger than the device runs in chunks.
template <class T>
void launchCooperative(void (*kernel)(const BatchArgs<T>), BatchArgs<T> ba, int threads,
                       void *stream) {
  int device = 0, sms = 0, perSM = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
  cudaOccupancyMaxActiveBlocksPerMultiprocessor(&perSM, kernel, threads, 0);
  const int capacity = sms * perSM;
  if (capacity < 1)
    throw std::runtime_error("CUDA kernel does not fit on the device");
  const int batch = ba.batch;
  for (int first = 0; first < batch; first += capacity) {
    const int n = batch - first < capacity ? batch - first : capacity;
    ba.firstElement = first;
    ba.splits = capacity / n < 8 ? capacity / n : 8;
    void *args[] = {&ba};
    cudaError_t e = cudaLaunchCooperativeKernel(
        reinterpret_cast<void *>(kernel), dim3(unsigned(n * ba.splits)), dim3(unsigned(threads)),
        args, 0, static_cast<cudaStream_t>(stream));
    if (e != cudaSuccess)
      throw std::runtime_error(std::string("cooperative launch: ") + cudaGetErrorString(e));
  }
}

} // namespace dopa
