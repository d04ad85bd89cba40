//===- CudaExecutor.cpp - Device buffers, launches and BPTT on the GPU ----===//
//
// Host code only (CUDA runtime API and cuBLAS); the kernels are the generated ones. See
// CudaExecutor.h for the scheme. cuBLAS is loaded with dlopen when the first CudaExecutor is made:
// its libraries map some 200 MB, which every process linking the CUDA runtime (the dopa tool on a
// CPU-only run, too) would otherwise carry in its resident memory.
//
//===----------------------------------------------------------------------===//
#include "dopa/cuda/CudaExecutor.h"

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <dlfcn.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>

using namespace dopa;

namespace {

void check(cudaError_t e, const char *what) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(e));
}
void check(cublasStatus_t s, const char *what) {
  if (s != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string("cuBLAS error in ") + what + ": status " +
                             std::to_string(int(s)));
}

/// The cuBLAS functions the executor calls, resolved from the shared library on first use.
struct Cublas {
  decltype(&cublasCreate_v2) create = nullptr;
  decltype(&cublasDestroy_v2) destroy = nullptr;
  decltype(&cublasSetStream_v2) setStream = nullptr;
  decltype(&cublasSgemm_v2) sgemm = nullptr;
  decltype(&cublasDgemm_v2) dgemm = nullptr;
};

template <class Fn> void resolve(void *lib, const char *name, Fn &fn) {
  fn = reinterpret_cast<Fn>(dlsym(lib, name));
  if (!fn)
    throw std::runtime_error(std::string(DOPA_CUBLAS_SONAME ": no symbol ") + name);
}

const Cublas &cublas() {
  static Cublas api;
  static std::once_flag once;
  std::call_once(once, [] {
    // By soname (the library path, the runpath), else where the toolkit was at build time.
    void *lib = dlopen(DOPA_CUBLAS_SONAME, RTLD_NOW | RTLD_LOCAL);
    if (!lib)
      lib = dlopen(DOPA_CUBLAS_PATH, RTLD_NOW | RTLD_LOCAL);
    if (!lib)
      throw std::runtime_error(std::string("cannot load cuBLAS (" DOPA_CUBLAS_SONAME "): ") +
                               dlerror());
    resolve(lib, "cublasCreate_v2", api.create);
    resolve(lib, "cublasDestroy_v2", api.destroy);
    resolve(lib, "cublasSetStream_v2", api.setStream);
    resolve(lib, "cublasSgemm_v2", api.sgemm);
    resolve(lib, "cublasDgemm_v2", api.dgemm);
  });
  return api;
}

/// Where an executor's launches go: the calling thread's default stream, named explicitly (the
/// runtime is also compiled with CUDA_API_PER_THREAD_DEFAULT_STREAM, so the synchronous copies
/// use it too). Executors driven by different host threads (dopa train --seeds) share the GPU.
void *const kStream = static_cast<void *>(cudaStreamPerThread);

/// A device buffer of T. It keeps its largest allocation (cudaFree waits for the whole device,
/// every thread's work included).
template <class T> class DeviceBuf {
public:
  DeviceBuf() = default;
  explicit DeviceBuf(size_t n) { resize(n); }
  ~DeviceBuf() { cudaFree(ptr); }
  DeviceBuf(const DeviceBuf &) = delete;
  DeviceBuf &operator=(const DeviceBuf &) = delete;
  DeviceBuf(DeviceBuf &&o) noexcept : ptr(o.ptr), count(o.count), capacity(o.capacity) {
    o.ptr = nullptr;
    o.count = o.capacity = 0;
  }
  DeviceBuf &operator=(DeviceBuf &&o) noexcept {
    std::swap(ptr, o.ptr);
    std::swap(count, o.count);
    std::swap(capacity, o.capacity);
    return *this;
  }
  void resize(size_t n) {
    if (n <= capacity) {
      count = n;
      return;
    }
    cudaFree(ptr);
    ptr = nullptr;
    count = capacity = 0;
    check(cudaMalloc(&ptr, n * sizeof(T)), "cudaMalloc");
    count = capacity = n;
  }
  void zero() {
    if (count)
      check(cudaMemset(ptr, 0, count * sizeof(T)), "cudaMemset");
  }
  T *data() { return ptr; }
  const T *data() const { return ptr; }
  size_t size() const { return count; }

private:
  T *ptr = nullptr;
  size_t count = 0, capacity = 0;
};

template <class T> void toDevice(T *dst, const T *src, size_t n) {
  check(cudaMemcpy(dst, src, n * sizeof(T), cudaMemcpyHostToDevice), "cudaMemcpy H2D");
}
template <class T> void toHost(T *dst, const T *src, size_t n) {
  check(cudaMemcpy(dst, src, n * sizeof(T), cudaMemcpyDeviceToHost), "cudaMemcpy D2H");
}
template <class T> void onDevice(T *dst, const T *src, size_t n) {
  check(cudaMemcpy(dst, src, n * sizeof(T), cudaMemcpyDeviceToDevice), "cudaMemcpy D2D");
}

} // namespace

bool dopa::cudaDeviceAvailable() { return cudaDeviceProblem().empty(); }

std::string dopa::cudaDeviceProblem() {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess)
    return cudaGetErrorString(e);
  return n > 0 ? "" : "no CUDA device";
}

int dopa::cudaDeviceCount() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
}

int dopa::cudaUseDeviceFor(int localRank) {
  int n = 0;
  check(cudaGetDeviceCount(&n), "cudaGetDeviceCount");
  if (n < 1)
    throw std::runtime_error("no CUDA device");
  int device = std::max(localRank, 0) % n;
  check(cudaSetDevice(device), "cudaSetDevice");
  return device;
}

std::string dopa::cudaDeviceDescription() {
  cudaDeviceProp p{};
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess || cudaGetDeviceProperties(&p, device) != cudaSuccess)
    return "no CUDA device";
  return "GPU " + std::to_string(device) + ": " + std::string(p.name) + ", " +
         std::to_string(p.multiProcessorCount) + " SMs, " +
         std::to_string(p.sharedMemPerMultiprocessor / 1024) + " KiB shared memory per SM, " +
         std::to_string(p.totalGlobalMem >> 30) + " GiB, sm_" + std::to_string(p.major) +
         std::to_string(p.minor);
}

template <class T> struct CudaExecutor<T>::Impl {
  BatchFn<T> fwd, bwd;
  SegmentFn<T> seg = nullptr;
  DeviceBuf<BatchArgs<T>> segArgs; // the backward's step arguments for the segment kernel
  int64_t S = 0, saved = 0, scratch = 0, record = 0;
  std::vector<int64_t> inputNumel, outputNumel;
  int64_t inputTotal = 0, maxOutput = 1;
  DeviceBuf<T> params, grads, cur, next, scratchBuf, zeros, outputs, gradA, gradB;
  std::vector<DeviceBuf<T>> tape;        // per step: inputs of all elements, input-major (reused)
  std::vector<DeviceBuf<T>> checkpoints; // per outer checkpoint: B * S (reused)
  size_t numCheckpoints = 0;
  DeviceBuf<T> savedScratch; // the training forward's saved values (not kept)
  // Page-locked staging for the per-step copies and for the backward's output gradients.
  T *pinnedIn = nullptr, *pinnedOut = nullptr, *pinnedGrads = nullptr;
  size_t pinnedInCount = 0, pinnedOutCount = 0, pinnedGradsCount = 0;
  ~Impl() {
    cudaFreeHost(pinnedIn);
    cudaFreeHost(pinnedOut);
    cudaFreeHost(pinnedGrads);
  }
  static T *pinned(T *&p, size_t &count, size_t n) {
    if (n > count) {
      cudaFreeHost(p);
      p = nullptr;
      count = 0; // (if the allocation fails, the next call tries again)
      check(cudaMallocHost(&p, n * sizeof(T)), "cudaMallocHost");
      count = n;
    }
    return p;
  }
  DeviceBuf<T> segStates, segSaved, records, outGrads;
  int outer = INT_MAX;
  cublasHandle_t blas = nullptr;
  mutable std::vector<std::vector<T>> stateViews;

  /// The output gradients of every step in `outGrads`, in one copy; per step and output, where
  /// they are on the device (`zeros` where outputGrads gives none).
  std::vector<std::vector<const T *>> uploadOutputGrads(int B, int steps,
                                                        const T *const *const *outputGrads) {
    int64_t outTotal = 0;
    for (int64_t n : outputNumel)
      outTotal += n;
    const size_t count = size_t(std::max<int64_t>(int64_t(steps) * B * outTotal, 1));
    outGrads.resize(count);
    T *stage = pinned(pinnedGrads, pinnedGradsCount, count);
    std::vector<std::vector<const T *>> where(size_t(steps),
                                              std::vector<const T *>(outputNumel.size()));
    for (int t = 0; t < steps; ++t) {
      int64_t at = int64_t(t) * B * outTotal;
      for (size_t k = 0; k < outputNumel.size(); ++k) {
        const T *g = outputGrads && outputGrads[t] ? outputGrads[t][k] : nullptr;
        if (g)
          std::copy_n(g, B * outputNumel[k], stage + at);
        where[size_t(t)][k] = g ? outGrads.data() + at : zeros.data();
        at += B * outputNumel[k];
      }
    }
    check(cudaMemcpyAsync(outGrads.data(), stage, count * sizeof(T), cudaMemcpyHostToDevice,
                          cudaStreamPerThread),
          "cudaMemcpyAsync H2D (output gradients)");
    return where;
  }

  /// A step's launch arguments: inputs from `tape` (input-major), outputs into `outputs`.
  BatchArgs<T> args(int B, const T *tape) {
    BatchArgs<T> a;
    a.batch = B;
    a.numInputs = int(inputNumel.size());
    a.numOutputs = int(outputNumel.size());
    for (size_t k = 0; k < inputNumel.size(); ++k)
      a.inputNumel[k] = inputNumel[k];
    for (size_t k = 0; k < outputNumel.size(); ++k)
      a.outputNumel[k] = outputNumel[k];
    a.stateStride = S;
    a.savedStride = saved;
    a.scratchStride = scratch;
    a.recordStride = record;
    a.params = params.data();
    a.scratch = scratchBuf.data();
    int64_t at = 0;
    for (size_t k = 0; k < inputNumel.size(); ++k) {
      a.inputs[k] = tape + at;
      at += B * inputNumel[k];
    }
    at = 0;
    for (size_t k = 0; k < outputNumel.size(); ++k) {
      a.outputs[k] = outputs.data() + at;
      at += B * outputNumel[k];
    }
    return a;
  }
};

template <class T>
CudaExecutor<T>::CudaExecutor(const CudaSpec &spec)
    : impl(std::make_unique<Impl>()), cudaSpec(spec), genSpec(spec.cpu()), netInfo(genSpec.info()),
      paramBuf(netInfo.numParams, T(0)), gradBuf(netInfo.numParams, T(0)) {
  Impl &m = *impl;
  if constexpr (std::is_same_v<T, float>) {
    m.fwd = spec.forwardFloat;
    m.bwd = spec.backwardFloat;
    m.seg = spec.segmentFloat;
  } else {
    m.fwd = spec.forwardDouble;
    m.bwd = spec.backwardDouble;
    m.seg = spec.segmentDouble;
  }
  if (const char *v = std::getenv("DOPA_CUDA_STEPWISE"); v && std::string(v) == "1")
    segmentLaunch = false;
  if (netInfo.inputs.size() > size_t(kMaxIO) || netInfo.outputs.size() > size_t(kMaxIO))
    throw std::runtime_error(netInfo.name + ": more than " + std::to_string(kMaxIO) +
                             " inputs or outputs for the CUDA backend");
  // The network's states are laid out as in the C++ network (same offsets); the C++ block also
  // holds carried products after them (dopac --carry-products), which the CUDA kernels compute in
  // the step, so their block may be shorter. The other blocks are the CUDA kernels' own.
  for (size_t s = 0; s < netInfo.states.size(); ++s)
    if (genSpec.stateOffsets[s] + netInfo.states[s].numel() > spec.stateNumel)
      throw std::logic_error(netInfo.name + ": state '" + netInfo.states[s].name +
                             "' does not fit the CUDA kernels' state block (" +
                             std::to_string(spec.stateNumel) + "): regenerate both");
  m.S = spec.stateNumel;
  m.saved = std::max<int64_t>(spec.savedNumel, 1);
  m.scratch = std::max<int64_t>(spec.scratchNumel, 1);
  m.record = spec.recordNumel;
  for (const TensorInfo &in : netInfo.inputs) {
    m.inputNumel.push_back(in.numel());
    m.inputTotal += in.numel();
  }
  for (const TensorInfo &o : netInfo.outputs) {
    m.outputNumel.push_back(o.numel());
    m.maxOutput = std::max(m.maxOutput, o.numel());
  }
  m.params.resize(netInfo.numParams);
  m.grads.resize(netInfo.numParams);
  check(cublas().create(&m.blas), "cublasCreate");
  check(cublas().setStream(m.blas, cudaStreamPerThread), "cublasSetStream"); // (kStream)
}

template <class T> CudaExecutor<T>::~CudaExecutor() {
  if (impl->blas)
    cublas().destroy(impl->blas);
}

// The calling thread's stream only (kStream): other threads' executors keep running.
template <class T> void CudaExecutor<T>::synchronize() {
  check(cudaStreamSynchronize(cudaStreamPerThread), "kernel execution");
}

template <class T> void CudaExecutor<T>::beginEpisode(int batch) {
  if (batch < 1)
    throw std::invalid_argument("batch size must be at least 1");
  B = batch;
  Impl &m = *impl;
  m.cur.resize(size_t(B * m.S));
  m.next.resize(size_t(B * m.S));
  std::vector<T> init(size_t(B * m.S), T(0));
  for (int b = 0; b < B; ++b)
    for (size_t s = 0; s < netInfo.states.size(); ++s)
      std::fill_n(init.begin() + b * m.S + genSpec.stateOffsets[s], netInfo.states[s].numel(),
                  T(netInfo.states[s].init.a));
  toDevice(m.cur.data(), init.data(), init.size());
  m.scratchBuf.resize(size_t(B * m.scratch));
  m.zeros.resize(size_t(B * m.maxOutput));
  m.zeros.zero();
  int64_t outTotal = 0;
  for (int64_t n : m.outputNumel)
    outTotal += n;
  m.outputs.resize(size_t(std::max<int64_t>(B * outTotal, 1)));
  truncate();
}

template <class T> void CudaExecutor<T>::truncate() {
  Impl &m = *impl;
  // Parameters are host-owned (the optimizer updates them there, between episodes and between
  // the windows of truncated BPTT): upload them whenever a new record starts.
  toDevice(m.params.data(), paramBuf.data(), paramBuf.size());
  numSteps = 0;
  m.outer = checkpointEvery > 0 ? checkpointEvery : INT_MAX;
  if (m.checkpoints.empty())
    m.checkpoints.emplace_back();
  m.numCheckpoints = 1;
  m.checkpoints[0].resize(size_t(B * m.S));
  onDevice(m.checkpoints[0].data(), m.cur.data(), size_t(B * m.S));
}

template <class T> void CudaExecutor<T>::step(const T *const *inputs, T *const *outputs) {
  if (B == 0)
    throw std::logic_error("step() before beginEpisode()");
  Impl &m = *impl;
  checkIndexInputs(netInfo, genSpec.inputRows, inputs, B);
  if (numSteps > 0 && m.outer != INT_MAX && numSteps % m.outer == 0) {
    if (m.numCheckpoints == m.checkpoints.size())
      m.checkpoints.emplace_back();
    DeviceBuf<T> &cp = m.checkpoints[m.numCheckpoints++];
    cp.resize(size_t(B * m.S));
    onDevice(cp.data(), m.cur.data(), size_t(B * m.S));
  }
  if (size_t(numSteps) == m.tape.size())
    m.tape.emplace_back();
  DeviceBuf<T> &rec = m.tape[size_t(numSteps)];
  rec.resize(size_t(std::max<int64_t>(B * m.inputTotal, 1)));
  // One copy in and one copy out per step, through page-locked staging buffers.
  T *stageIn =
      Impl::pinned(m.pinnedIn, m.pinnedInCount, size_t(std::max<int64_t>(B * m.inputTotal, 1)));
  int64_t at = 0;
  for (size_t k = 0; k < m.inputNumel.size(); ++k) {
    std::copy_n(inputs[k], B * m.inputNumel[k], stageIn + at);
    at += B * m.inputNumel[k];
  }
  check(cudaMemcpyAsync(rec.data(), stageIn, size_t(at) * sizeof(T), cudaMemcpyHostToDevice,
                        cudaStreamPerThread),
        "cudaMemcpyAsync H2D");
  BatchArgs<T> a = m.args(B, rec.data());
  a.state = m.cur.data();
  a.next = m.next.data();
  m.savedScratch.resize(size_t(B * m.saved)); // recomputed in the backward, not kept
  a.saved = m.savedScratch.data();
  m.fwd(a, kStream);
  check(cudaGetLastError(), "forward kernel launch");
  int64_t outTotal = 0;
  for (int64_t n : m.outputNumel)
    outTotal += B * n;
  T *stageOut = Impl::pinned(m.pinnedOut, m.pinnedOutCount, size_t(std::max<int64_t>(outTotal, 1)));
  toHost(stageOut, m.outputs.data(), size_t(outTotal));
  at = 0;
  for (size_t k = 0; k < m.outputNumel.size(); ++k) {
    std::copy_n(stageOut + at, B * m.outputNumel[k], outputs[k]);
    at += B * m.outputNumel[k];
  }
  std::swap(m.cur, m.next);
  ++numSteps;
}

template <class T>
void CudaExecutor<T>::backward(const T *const *const *outputGrads,
                               const T *const *finalStateGrads) {
  Impl &m = *impl;
  int steps = numSteps;
  if (steps == 0)
    return;
  int outer = std::min(m.outer, steps);
  int64_t S = m.S;
  std::vector<std::vector<const T *>> gPtr = m.uploadOutputGrads(B, steps, outputGrads);
  m.gradA.resize(size_t(B * S));
  m.gradB.resize(size_t(B * S));
  m.gradA.zero();
  if (finalStateGrads) {
    std::vector<T> host(size_t(B * S), T(0));
    for (size_t s = 0; s < netInfo.states.size(); ++s)
      if (finalStateGrads[s]) {
        int64_t n = netInfo.states[s].numel();
        for (int b = 0; b < B; ++b)
          std::copy(finalStateGrads[s] + b * n, finalStateGrads[s] + (b + 1) * n,
                    host.begin() + b * S + genSpec.stateOffsets[s]);
      }
    toDevice(m.gradA.data(), host.data(), host.size());
  }
  m.grads.zero();
  m.segStates.resize(size_t((outer + 1) * B * S));
  m.segSaved.resize(size_t(outer * B * m.saved));
  m.records.resize(size_t(std::max<int64_t>(int64_t(steps) * B * m.record, 1)));
  // Every launch's arguments, segment by segment from the last: its replayed forward steps from
  // the segment's checkpoint, then its backward steps, newest first.
  T *gNext = m.gradA.data(), *gPrev = m.gradB.data();
  int numSegments = (steps + outer - 1) / outer;
  std::vector<BatchArgs<T>> launches;
  launches.reserve(2 * size_t(steps));
  for (int seg = numSegments - 1; seg >= 0; --seg) {
    int from = seg * outer, to = std::min(steps, from + outer);
    for (int step = from; step < to; ++step) {
      int r = step - from;
      BatchArgs<T> a = m.args(B, m.tape[size_t(step)].data());
      a.state = m.segStates.data() + r * B * S;
      a.next = m.segStates.data() + (r + 1) * B * S;
      a.saved = m.segSaved.data() + r * B * m.saved;
      launches.push_back(a);
    }
    for (int step = to - 1; step >= from; --step) {
      int r = step - from;
      BatchArgs<T> a = m.args(B, m.tape[size_t(step)].data());
      for (size_t k = 0; k < m.outputNumel.size(); ++k)
        a.gradOutputs[k] = gPtr[size_t(step)][k];
      a.grads = m.grads.data();
      a.state = m.segStates.data() + r * B * S;
      a.saved = m.segSaved.data() + r * B * m.saved;
      a.gradNext = gNext;
      a.gradPrev = gPrev;
      a.record = m.record ? m.records.data() + int64_t(step) * B * m.record : nullptr;
      launches.push_back(a);
      std::swap(gNext, gPrev);
    }
  }
  const bool oneLaunch = segmentLaunch && m.seg;
  if (oneLaunch) {
    m.segArgs.resize(launches.size());
    toDevice(m.segArgs.data(), launches.data(), launches.size());
  }
  size_t at = 0;
  for (int seg = numSegments - 1; seg >= 0; --seg) {
    int n = std::min(steps, (seg + 1) * outer) - seg * outer;
    onDevice(m.segStates.data(), m.checkpoints[size_t(seg)].data(), size_t(B * S));
    if (oneLaunch) {
      SegmentArgs<T> sa;
      sa.batch = B;
      sa.steps = m.segArgs.data() + at;
      sa.replays = sa.backwards = n;
      m.seg(sa, kStream);
    } else {
      for (int i = 0; i < 2 * n; ++i)
        (i < n ? m.fwd : m.bwd)(launches[at + size_t(i)], kStream);
    }
    at += 2 * size_t(n);
    check(cudaGetLastError(), "backward kernel launch");
  }
  // Deferred outer products: dW (row-major rows x cols) += A^T B over all steps and elements,
  // i.e. column-major dW^T (cols x rows) += B_cm * A_cm^T with leading dimension recordNumel.
  for (int d = 0; d < cudaSpec.numDeferred; ++d) {
    const DeferredOuter &o = cudaSpec.deferred[d];
    const T one = T(1);
    int k = steps * B;
    const T *A = m.records.data() + o.offsetA, *Bm = m.records.data() + o.offsetB;
    T *C = m.grads.data() + o.paramOffset;
    if constexpr (std::is_same_v<T, float>)
      check(cublas().sgemm(m.blas, CUBLAS_OP_N, CUBLAS_OP_T, int(o.cols), int(o.rows), k, &one, Bm,
                           int(m.record), A, int(m.record), &one, C, int(o.cols)),
            "cublasSgemm");
    else
      check(cublas().dgemm(m.blas, CUBLAS_OP_N, CUBLAS_OP_T, int(o.cols), int(o.rows), k, &one, Bm,
                           int(m.record), A, int(m.record), &one, C, int(o.cols)),
            "cublasDgemm");
  }
  std::vector<T> host(netInfo.numParams);
  toHost(host.data(), m.grads.data(), host.size());
  for (size_t i = 0; i < host.size(); ++i)
    gradBuf[i] += host[i];
  truncate();
}

template <class T> void CudaExecutor<T>::setState(int s, const T *values) {
  if (s < 0 || size_t(s) >= netInfo.states.size())
    throw std::out_of_range("setState: no state " + std::to_string(s));
  if (numSteps != 0 || B == 0)
    throw std::logic_error("setState: only right after beginEpisode() or truncate()");
  Impl &m = *impl;
  std::vector<T> all(size_t(B * m.S));
  toHost(all.data(), m.cur.data(), all.size());
  int64_t n = netInfo.states[size_t(s)].numel();
  for (int b = 0; b < B; ++b)
    std::copy_n(values + b * n, n, all.begin() + b * m.S + genSpec.stateOffsets[s]);
  toDevice(m.cur.data(), all.data(), all.size());
  onDevice(m.checkpoints[0].data(), m.cur.data(), size_t(B * m.S));
}

template <class T> const T *CudaExecutor<T>::state(int s) const {
  Impl &m = *impl;
  if (m.stateViews.size() != netInfo.states.size())
    m.stateViews.resize(netInfo.states.size());
  std::vector<T> all(size_t(B * m.S));
  toHost(all.data(), m.cur.data(), all.size());
  int64_t n = netInfo.states[size_t(s)].numel();
  std::vector<T> &v = m.stateViews[size_t(s)];
  v.resize(size_t(B * n));
  for (int b = 0; b < B; ++b)
    std::copy_n(all.begin() + b * m.S + genSpec.stateOffsets[s], n, v.begin() + b * n);
  return v.data();
}

template class dopa::CudaExecutor<float>;
template class dopa::CudaExecutor<double>;
