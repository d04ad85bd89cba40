//===- DeviceSupport.cuh - What generated CUDA networks include -----------===//
//
// The one header the CUDA that dopac generates includes, so that a generated file holds only the
// network's own code: the batch calling convention (CudaSpec.h) and the helpers every generated
// kernel uses. warpSum adds a value over the 32 lanes of a warp (shuffles; the nests' row and dot
// reductions), elementSync is the barrier between the stages of a step (the blocks working on one
// batch element share its buffers), and launchStep starts a step's (or a backward segment's)
// kernel with one block, a cluster of blocks or a cooperative grid per batch element
// (LaunchPolicy, DOPA_CUDA_BARRIER).
// Header-only, for nvcc.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dopa/cuda/CudaSpec.h"

#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>

namespace dopa {

/// The sum of v over the 32 lanes of a warp (every lane gets it).
template <class T> __device__ __forceinline__ T warpSum(T v) {
  for (int o = 16; o > 0; o >>= 1)
    v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

/// How the blocks that work on one batch element wait for each other between the stages of a
/// step: `Block`, one block per element and __syncthreads; `Cluster`, the element's blocks form a
/// thread-block cluster (Hopper and later) and use its hardware barrier; `Grid`, a cooperative
/// launch and a grid-wide barrier (any GPU; the barrier waits for every element's blocks).
enum class Barrier { Block, Cluster, Grid };

/// The launch of every step kernel: the barrier, blocks per element (0: the default, 4 for a
/// cluster, as many as fit for the grid, at most 8) and threads per block (0: the kernel's, 1024;
/// fewer let more elements share an SM but make each step slower, docs/mpi.md).
struct LaunchPolicy {
  Barrier barrier = Barrier::Cluster;
  int splits = 0;
  int threads = 0;
  bool chosen = false; // DOPA_CUDA_BARRIER set the barrier (else: the default)
};

/// The policy, read once: clusters of 4 blocks per element on Hopper and later, else the
/// cooperative grid (measured on an H200 for cue-reward modul, docs/benchmarks.md: clusters of 4
/// 16.1 ms per iteration, of 8 19.1, of 2 19.7, the grid 19.2, one block per element 21.9);
/// DOPA_CUDA_BARRIER (block | cluster | grid), DOPA_CUDA_SPLITS (1-8) and DOPA_CUDA_THREADS (32 to
/// 1024, a multiple of 32: the stages stride over blockDim, a warp per row) override it, and a bad
/// value is an error, not a silent default.
inline LaunchPolicy launchPolicy() {
  static const LaunchPolicy policy = [] {
    LaunchPolicy p;
    int device = 0, major = 0;
    cudaGetDevice(&device);
    cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
    p.barrier = major >= 9 ? Barrier::Cluster : Barrier::Grid;
    if (const char *v = std::getenv("DOPA_CUDA_BARRIER"); v && *v) {
      const std::string s(v);
      p.chosen = true;
      if (s == "block")
        p.barrier = Barrier::Block;
      else if (s == "cluster")
        p.barrier = Barrier::Cluster;
      else if (s == "grid")
        p.barrier = Barrier::Grid;
      else
        throw std::runtime_error("DOPA_CUDA_BARRIER is block, cluster or grid, not '" + s + "'");
    }
    if (const char *v = std::getenv("DOPA_CUDA_SPLITS"); v && *v) {
      p.splits = std::atoi(v);
      if (p.splits < 1 || p.splits > 8)
        throw std::runtime_error(std::string("DOPA_CUDA_SPLITS is 1 to 8, not '") + v + "'");
    }
    if (const char *v = std::getenv("DOPA_CUDA_THREADS"); v && *v) {
      p.threads = std::atoi(v);
      if (p.threads < 32 || p.threads > 1024 || p.threads % 32 != 0)
        throw std::runtime_error(
            std::string("DOPA_CUDA_THREADS is a multiple of 32 from 32 to 1024, not '") + v + "'");
    }
    return p;
  }();
  return policy;
}

/// Wait for the other blocks of this batch element (and make their writes visible): what the
/// launch chose, see Barrier. Every block of a launch takes the same branch.
__device__ __forceinline__ void elementSync(int splits) {
  if (splits == 1) {
    __syncthreads();
    return;
  }
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  cooperative_groups::cluster_group cluster = cooperative_groups::this_cluster();
  if (cluster.num_blocks() > 1) {
    cluster.sync();
    return;
  }
#endif
  cooperative_groups::this_grid().sync();
}

/// What a launch needs to know of a kernel on the current device (cached per kernel and device):
/// how many of its blocks run at once, and the architecture its code was compiled for (90 for
/// sm_90; a cluster barrier exists only in code for 90 and later, see elementSync).
struct KernelFacts {
  int coResident = 0, arch = 0;
};
inline KernelFacts kernelFacts(const void *kernel, int threads) {
  static std::mutex mutex;
  static std::map<std::pair<const void *, int>, KernelFacts> known;
  int device = 0;
  cudaGetDevice(&device);
  std::lock_guard<std::mutex> lock(mutex);
  auto [it, fresh] = known.emplace(std::make_pair(kernel, device), KernelFacts{});
  if (fresh) {
    int sms = 0, perSM = 0;
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
    cudaOccupancyMaxActiveBlocksPerMultiprocessor(&perSM, kernel, threads, 0);
    cudaFuncAttributes attributes = {};
    cudaFuncGetAttributes(&attributes, kernel);
    it->second = {sms * perSM, attributes.ptxVersion};
  }
  return it->second;
}

/// What a launch runs, for its error messages.
template <class T> const char *kernelKind(const BatchArgs<T> &) { return "a step kernel"; }
template <class T> const char *kernelKind(const SegmentArgs<T> &) {
  return "a backward segment's kernel";
}

/// Launch one step's `kernel` over the batch as launchPolicy() says: one block per element; a
/// cluster of `splits` blocks per element; or cooperatively, as many blocks per element as fit on
/// the device at once, in chunks of the batch when the whole batch does not fit. Args is
/// BatchArgs (a step) or SegmentArgs (a backward segment): the launcher sets its firstElement and
/// splits.
template <class Args>
void launchStep(void (*kernel)(const Args), Args ba, int threads, void *stream) {
  LaunchPolicy policy = launchPolicy();
  if (policy.threads > 0 && policy.threads < threads)
    threads = policy.threads;
  const KernelFacts facts = kernelFacts(reinterpret_cast<const void *>(kernel), threads);
  if (policy.barrier == Barrier::Cluster && facts.arch < 90) {
    if (policy.chosen)
      throw std::runtime_error("DOPA_CUDA_BARRIER=cluster needs kernels compiled for sm_90 or "
                               "later (CMAKE_CUDA_ARCHITECTURES); these are for sm_" +
                               std::to_string(facts.arch));
    // Code for an older GPU run on Hopper: it has no cluster barrier (elementSync).
    policy.barrier = Barrier::Grid;
  }
  const auto s = static_cast<cudaStream_t>(stream);
  auto check = [](cudaError_t e, const char *how) {
    if (e != cudaSuccess)
      throw std::runtime_error(std::string(how) + " of " + kernelKind(Args{}) + ": " +
                               cudaGetErrorString(e));
  };
  const int batch = ba.batch;
  ba.firstElement = 0;
  if (policy.barrier == Barrier::Block) {
    ba.splits = 1;
    kernel<<<dim3(unsigned(batch)), dim3(unsigned(threads)), 0, s>>>(ba);
    check(cudaGetLastError(), "kernel launch");
    return;
  }
  if (policy.barrier == Barrier::Cluster) {
    ba.splits = policy.splits ? policy.splits : 4;
    cudaLaunchConfig_t config = {};
    config.gridDim = dim3(unsigned(batch * ba.splits));
    config.blockDim = dim3(unsigned(threads));
    config.stream = s;
    cudaLaunchAttribute cluster = {};
    cluster.id = cudaLaunchAttributeClusterDimension;
    cluster.val.clusterDim.x = unsigned(ba.splits);
    cluster.val.clusterDim.y = 1;
    cluster.val.clusterDim.z = 1;
    config.attrs = &cluster;
    config.numAttrs = 1;
    check(cudaLaunchKernelEx(&config, kernel, ba), "cluster launch");
    return;
  }
  const int capacity = facts.coResident;
  if (capacity < 1)
    throw std::runtime_error("CUDA kernel does not fit on the device");
  for (int first = 0; first < batch; first += capacity) {
    const int n = batch - first < capacity ? batch - first : capacity;
    const int most = policy.splits ? policy.splits : 8;
    ba.firstElement = first;
    ba.splits = capacity / n < most ? capacity / n : most;
    void *args[] = {&ba};
    check(cudaLaunchCooperativeKernel(reinterpret_cast<void *>(kernel),
                                      dim3(unsigned(n * ba.splits)), dim3(unsigned(threads)), args,
                                      0, s),
          "cooperative launch");
  }
}

} // namespace dopa
