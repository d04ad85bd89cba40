//===- Executor.cpp - The generic executor: the IR interpreted op by op ----===//
//
// Every value is a batch of tensors (or one tensor shared by the batch); every op allocates its
// result, as a framework does. Broadcasting, slicing and reductions use offset tables computed
// once per node from the static shapes. Dense products go through Eigen (one GEMM for the batch
// when the matrix is shared, one GEMV per batch element when it is not).
//
//===----------------------------------------------------------------------===//
#include "dopa/generic/Executor.h"
#include "dopa/runtime/Bf16.h"
#include "dopa/runtime/Memory.h"

#include <Eigen/Dense>

#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <unordered_map>

using namespace dopa;
using ir::Graph;
using ir::Node;
using ir::Op;

NetworkInfo dopa::makeNetworkInfo(const Graph &fwd) {
  auto init = [](const sema::Init &i) {
    InitSpec s;
    s.kind = i.kind == sema::Init::Constant  ? InitSpec::Constant
             : i.kind == sema::Init::Uniform ? InitSpec::Uniform
                                             : InitSpec::Normal;
    s.a = i.a;
    s.b = i.b;
    return s;
  };
  NetworkInfo info;
  info.name = fwd.name;
  for (const ir::Variable &p : fwd.params) {
    info.paramOffsets.push_back(info.numParams);
    info.params.push_back({p.name, p.shape, false, init(p.init), p.dropout});
    info.numParams += size_t(ir::numElements(p.shape));
  }
  for (const ir::Variable &in : fwd.inputs)
    info.inputs.push_back({in.name, in.shape, in.isInt, {}, in.dropout});
  for (const ir::Output &o : fwd.outputs)
    info.outputs.push_back({o.name, fwd.node(o.node).shape, false, {}});
  for (const ir::Variable &s : fwd.states)
    info.states.push_back({s.name, s.shape, false, init(s.init)});
  return info;
}

// Batch elements are independent in every per-element loop: spread them over threads (the thread
// count is OpenMP's: OMP_NUM_THREADS, or dopa's --threads). Loops that can throw stay serial.
#define DOPA_PRAGMA(x) _Pragma(#x)
#define DOPA_PARALLEL_FOR_BATCH DOPA_PRAGMA(omp parallel for schedule(static) if (batch > 1))

namespace {

/// Offsets into an operand of shape `from` for each element of a result of shape `to` under
/// NumPy broadcasting (the operand's size-1 and missing axes repeat).
std::vector<int64_t> broadcastTable(const ir::Shape &to, const ir::Shape &from) {
  size_t r = to.size();
  std::vector<int64_t> strides(r, 0);
  int64_t stride = 1;
  for (size_t k = 0; k < from.size(); ++k) {
    size_t j = from.size() - 1 - k, i = r - 1 - k;
    strides[i] = from[j] == 1 ? 0 : stride;
    stride *= from[j];
  }
  int64_t n = ir::numElements(to);
  std::vector<int64_t> table(static_cast<size_t>(n));
  std::vector<int64_t> idx(r, 0);
  int64_t off = 0;
  for (int64_t e = 0; e < n; ++e) {
    table[size_t(e)] = off;
    for (size_t i = r; i-- > 0;) {
      ++idx[i];
      off += strides[i];
      if (idx[i] < to[i])
        break;
      off -= strides[i] * idx[i];
      idx[i] = 0;
    }
  }
  return table;
}

/// Offsets into the full tensor of each element of a slice (attrs as in IR.h).
std::vector<int64_t> sliceTable(const ir::Shape &full, const std::vector<int64_t> &attrs) {
  size_t r = full.size();
  std::vector<int64_t> strides(r, 1), extent(r);
  for (size_t i = r; i-- > 1;)
    strides[i - 1] = strides[i] * full[i];
  int64_t n = 1;
  for (size_t i = 0; i < r; ++i) {
    extent[i] = attrs[r + i] - attrs[i];
    n *= extent[i];
  }
  std::vector<int64_t> table(static_cast<size_t>(n));
  std::vector<int64_t> idx(r, 0);
  for (int64_t e = 0; e < n; ++e) {
    int64_t off = 0;
    for (size_t i = 0; i < r; ++i)
      off += (attrs[i] + idx[i]) * strides[i];
    table[size_t(e)] = off;
    for (size_t i = r; i-- > 0;) {
      if (++idx[i] < extent[i])
        break;
      idx[i] = 0;
    }
  }
  return table;
}

} // namespace

template <class T> struct Executor<T>::Impl {
  /// A batch of tensors (batch B) or one tensor shared by the batch (batch 1).
  struct Value {
    Tensor<T> storage; // [batch, numel]; a view for parameters and caller-owned buffers
    const T *data = nullptr;
    int batch = 1;
    int64_t numel = 0;
    const T *at(int b) const { return data + (batch > 1 ? int64_t(b) * numel : 0); }
    T *mut() { return storage.data(); }
    size_t bytes() const { return storage.owning() ? storage.bytes() : 0; }
  };
  struct Record {
    std::vector<Value> saved;  // forward values the backward graph reads
    std::vector<Value> inputs; // the step's inputs
  };
  /// Per node: how each operand is addressed (0 same shape, 1 scalar, 2 table) and its table.
  struct Plan {
    std::vector<int> mode;
    std::vector<std::vector<int64_t>> tables;
  };

  /// A caching allocator, as frameworks have: buffers freed by values return to a free list by
  /// size and are handed out again, instead of going back to the kernel and faulting in anew.
  struct Pool {
    std::unordered_map<size_t, std::vector<T *>> free;
    ~Pool() {
      for (auto &[n, list] : free)
        for (T *p : list)
          std::free(p);
    }
  };

  const Graph &fwd, &bwd;
  Executor<T> &owner;
  std::shared_ptr<Pool> pool = std::make_shared<Pool>();
  std::vector<Plan> fwdPlans, bwdPlans;
  std::vector<int> savedSlot; // fwd node -> slot in Record::saved, or -1
  std::vector<int> savedNodes;
  std::vector<Value> fwdConsts, bwdConsts;
  std::vector<Value> states;
  std::vector<Record> tape;

  Impl(const Graph &f, const Graph &b, Executor<T> &owner) : fwd(f), bwd(b), owner(owner) {
    plan(fwd, fwdPlans, fwdConsts);
    plan(bwd, bwdPlans, bwdConsts);
    savedSlot.assign(fwd.nodes.size(), -1);
    for (const Node &n : bwd.nodes)
      if (n.op == Op::FwdValue && savedSlot[size_t(n.index)] < 0) {
        savedSlot[size_t(n.index)] = int(savedNodes.size());
        savedNodes.push_back(n.index);
      }
  }

  /// An uninitialized value (for ops that write every element).
  Value allocRaw(int batch, int64_t numel) const {
    size_t n = size_t(batch) * size_t(numel);
    T *p = nullptr;
    auto &list = pool->free[n];
    if (!list.empty()) {
      p = list.back();
      list.pop_back();
    } else {
      size_t bytes = (std::max<size_t>(n, 1) * sizeof(T) + 63) / 64 * 64;
      p = static_cast<T *>(std::aligned_alloc(64, bytes));
      if (!p)
        throw std::bad_alloc();
    }
    std::shared_ptr<Pool> keep = pool;
    Value v;
    v.storage = Tensor<T>::adopt(
        std::shared_ptr<T>(p, [keep, n](T *q) { keep->free[n].push_back(q); }), {batch, numel});
    v.data = v.storage.data();
    v.batch = batch;
    v.numel = numel;
    return v;
  }
  Value alloc(int batch, int64_t numel, T fill = T(0)) const {
    Value v = allocRaw(batch, numel);
    std::fill(v.mut(), v.mut() + size_t(batch) * size_t(numel), fill);
    return v;
  }
  static Value view(const T *data, int batch, int64_t numel) {
    Value v;
    v.data = data;
    v.batch = batch;
    v.numel = numel;
    return v;
  }
  Value copyOf(const T *data, int batch, int64_t numel) const {
    Value v = allocRaw(batch, numel);
    std::copy(data, data + size_t(batch) * size_t(numel), v.mut());
    return v;
  }
  /// A value with one copy per batch element (states and outputs are always per element).
  Value expand(const Value &v) const {
    int B = owner.B;
    if (v.batch == B)
      return v;
    Value out = allocRaw(B, v.numel);
    for (int b = 0; b < B; ++b)
      std::copy(v.data, v.data + v.numel, out.mut() + int64_t(b) * v.numel);
    return out;
  }

  void plan(const Graph &g, std::vector<Plan> &plans, std::vector<Value> &consts) {
    plans.resize(g.nodes.size());
    consts.resize(g.nodes.size());
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      const Node &n = g.nodes[i];
      Plan &p = plans[i];
      if (n.op == Op::Const)
        consts[i] = alloc(1, ir::numElements(n.shape), T(n.value));
      if (ir::isElementwise(n.op)) {
        for (int o : n.operands) {
          const ir::Shape &s = g.node(o).shape;
          if (s == n.shape) {
            p.mode.push_back(0);
            p.tables.emplace_back();
          } else if (ir::numElements(s) == 1) {
            p.mode.push_back(1);
            p.tables.emplace_back();
          } else {
            p.mode.push_back(2);
            p.tables.push_back(broadcastTable(n.shape, s));
          }
        }
      } else if (n.op == Op::ReduceTo) {
        p.tables.push_back(broadcastTable(g.node(n.operands[0]).shape, n.shape));
      } else if (n.op == Op::BroadcastTo) {
        p.tables.push_back(broadcastTable(n.shape, g.node(n.operands[0]).shape));
      } else if (n.op == Op::Slice) {
        p.tables.push_back(sliceTable(g.node(n.operands[0]).shape, n.attrs));
      } else if (n.op == Op::SliceGrad) {
        p.tables.push_back(sliceTable(n.shape, n.attrs));
      }
    }
  }

  // --- ops -----------------------------------------------------------------

  template <class F> Value map1(const Node &n, const Value &a, const Plan &p, F f) {
    int batch = n.batched ? owner.B : 1;
    int64_t N = ir::numElements(n.shape);
    Value out = allocRaw(batch, N);
    DOPA_PARALLEL_FOR_BATCH
    for (int b = 0; b < batch; ++b) {
      const T *pa = a.at(b);
      T *po = out.mut() + int64_t(b) * N;
      if (p.mode[0] == 0)
        for (int64_t e = 0; e < N; ++e)
          po[e] = f(pa[e]);
      else if (p.mode[0] == 1)
        for (int64_t e = 0; e < N; ++e)
          po[e] = f(pa[0]);
      else
        for (int64_t e = 0; e < N; ++e)
          po[e] = f(pa[p.tables[0][size_t(e)]]);
    }
    return out;
  }

  template <class F> Value map2(const Node &n, const Value &a, const Value &c, const Plan &p, F f) {
    int batch = n.batched ? owner.B : 1;
    int64_t N = ir::numElements(n.shape);
    Value out = allocRaw(batch, N);
    auto idx = [&](int k, int64_t e) -> int64_t {
      return p.mode[k] == 0 ? e : p.mode[k] == 1 ? 0 : p.tables[k][size_t(e)];
    };
    DOPA_PARALLEL_FOR_BATCH
    for (int b = 0; b < batch; ++b) {
      const T *pa = a.at(b), *pc = c.at(b);
      T *po = out.mut() + int64_t(b) * N;
      if (p.mode[0] == 0 && p.mode[1] == 0)
        for (int64_t e = 0; e < N; ++e)
          po[e] = f(pa[e], pc[e]);
      else if (p.mode[0] == 0 && p.mode[1] == 1)
        for (int64_t e = 0; e < N; ++e)
          po[e] = f(pa[e], pc[0]);
      else if (p.mode[0] == 1 && p.mode[1] == 0)
        for (int64_t e = 0; e < N; ++e)
          po[e] = f(pa[0], pc[e]);
      else
        for (int64_t e = 0; e < N; ++e)
          po[e] = f(pa[idx(0, e)], pc[idx(1, e)]);
    }
    return out;
  }

  template <class F>
  Value map3(const Node &n, const Value &a, const Value &lo, const Value &hi, const Plan &p, F f) {
    int batch = n.batched ? owner.B : 1;
    int64_t N = ir::numElements(n.shape);
    Value out = allocRaw(batch, N);
    DOPA_PARALLEL_FOR_BATCH
    for (int b = 0; b < batch; ++b) {
      const T *pa = a.at(b);
      T l = lo.at(b)[0], h = hi.at(b)[0];
      T *po = out.mut() + int64_t(b) * N;
      for (int64_t e = 0; e < N; ++e)
        po[e] = f(pa[p.mode[0] == 0 ? e : p.mode[0] == 1 ? 0 : p.tables[0][size_t(e)]], l, h);
    }
    return out;
  }

  /// A result with one tensor per batch element (or one shared by the batch), filled by
  /// body(b, out_b) for every element, the elements in parallel. With `zero` it starts from zeros.
  template <class F> Value perElement(const Node &n, bool zero, F body) {
    int batch = n.batched ? owner.B : 1;
    int64_t N = ir::numElements(n.shape);
    Value out = zero ? alloc(batch, N) : allocRaw(batch, N);
    T *base = out.mut();
    DOPA_PARALLEL_FOR_BATCH
    for (int b = 0; b < batch; ++b)
      body(b, base + int64_t(b) * N);
    return out;
  }

  /// out[e] = x[table[e]] (broadcast_to, slice).
  Value gather(const Node &n, const Value &x, const std::vector<int64_t> &table) {
    return perElement(n, false, [&](int b, T *po) {
      const T *px = x.at(b);
      for (size_t e = 0; e < table.size(); ++e)
        po[e] = px[table[e]];
    });
  }

  /// out[table[e]] (+)= x[e], starting from zeros (reduce_to accumulates, slice_grad places).
  Value scatter(const Node &n, const Value &x, const std::vector<int64_t> &table, bool accumulate) {
    return perElement(n, true, [&](int b, T *po) {
      const T *px = x.at(b);
      for (size_t e = 0; e < table.size(); ++e) {
        if (accumulate)
          po[table[e]] += px[e];
        else
          po[table[e]] = px[e];
      }
    });
  }

  using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using Vec = Eigen::Matrix<T, Eigen::Dynamic, 1>;
  using MapMat = Eigen::Map<const Mat>;
  using MapVec = Eigen::Map<const Vec>;

  Value matmul(const Node &n, const Graph &g, const Value &a, const Value &c) {
    const ir::Shape &sa = g.node(n.operands[0]).shape, &sc = g.node(n.operands[1]).shape;
    int batch = n.batched ? owner.B : 1;
    int64_t N = ir::numElements(n.shape);
    Value out = allocRaw(batch, N);
    T *po = out.mut();
    if (sa.size() == 2 && sc.size() == 1) { // [M,K]@[K]
      int64_t M = sa[0], K = sa[1];
      if (a.batch == 1 && c.batch > 1) { // one GEMM for the batch: Y = X A^T
        Eigen::Map<Mat>(po, batch, M).noalias() =
            MapMat(c.data, c.batch, K) * MapMat(a.data, M, K).transpose();
        return out;
      }
      DOPA_PARALLEL_FOR_BATCH
      for (int b = 0; b < batch; ++b)
        Eigen::Map<Vec>(po + b * N, M).noalias() = MapMat(a.at(b), M, K) * MapVec(c.at(b), K);
    } else if (sa.size() == 1 && sc.size() == 2) { // [K]@[K,N]
      int64_t K = sc[0], Nn = sc[1];
      if (c.batch == 1 && a.batch > 1) {
        Eigen::Map<Mat>(po, batch, Nn).noalias() =
            MapMat(a.data, a.batch, K) * MapMat(c.data, K, Nn);
        return out;
      }
      DOPA_PARALLEL_FOR_BATCH
      for (int b = 0; b < batch; ++b)
        Eigen::Map<Vec>(po + b * N, Nn).noalias() =
            MapMat(c.at(b), K, Nn).transpose() * MapVec(a.at(b), K);
    } else if (sa.size() == 2 && sc.size() == 2) { // [M,K]@[K,N]
      int64_t M = sa[0], K = sa[1], Nn = sc[1];
      DOPA_PARALLEL_FOR_BATCH
      for (int b = 0; b < batch; ++b)
        Eigen::Map<Mat>(po + b * N, M, Nn).noalias() =
            MapMat(a.at(b), M, K) * MapMat(c.at(b), K, Nn);
    } else { // [K]@[K]
      int64_t K = sa[0];
      DOPA_PARALLEL_FOR_BATCH
      for (int b = 0; b < batch; ++b)
        po[b] = MapVec(a.at(b), K).dot(MapVec(c.at(b), K));
    }
    return out;
  }

  Value eval(const Graph &g, const Node &n, const std::vector<Value> &vals, const Plan &p) {
    auto arg = [&](size_t k) -> const Value & { return vals[size_t(n.operands[k])]; };
    int batch = n.batched ? owner.B : 1;
    int64_t N = ir::numElements(n.shape);
    switch (n.op) {
    case Op::Neg: return map1(n, arg(0), p, [](T x) { return -x; });
    case Op::Tanh: return map1(n, arg(0), p, [](T x) { return std::tanh(x); });
    case Op::Sigmoid: return map1(n, arg(0), p, [](T x) { return T(1) / (T(1) + std::exp(-x)); });
    case Op::Relu: return map1(n, arg(0), p, [](T x) { return x > 0 ? x : T(0); });
    case Op::Exp: return map1(n, arg(0), p, [](T x) { return std::exp(x); });
    case Op::Log: return map1(n, arg(0), p, [](T x) { return std::log(x); });
    case Op::Abs: return map1(n, arg(0), p, [](T x) { return std::abs(x); });
    case Op::Sqrt: return map1(n, arg(0), p, [](T x) { return std::sqrt(x); });
    case Op::Step: return map1(n, arg(0), p, [](T x) { return x > 0 ? T(1) : T(0); });
    case Op::Sign: return map1(n, arg(0), p, [](T x) { return T((x > 0) - (x < 0)); });
    case Op::Detach: return arg(0);
    // float: the bfloat16 a trace is stored in; double: the identity (Bf16.h).
    case Op::RoundBf16: return map1(n, arg(0), p, [](T x) { return roundBf16(x); });
    case Op::Add: return map2(n, arg(0), arg(1), p, [](T x, T y) { return x + y; });
    case Op::Sub: return map2(n, arg(0), arg(1), p, [](T x, T y) { return x - y; });
    case Op::Mul: return map2(n, arg(0), arg(1), p, [](T x, T y) { return x * y; });
    case Op::Div: return map2(n, arg(0), arg(1), p, [](T x, T y) { return x / y; });
    case Op::Min: return map2(n, arg(0), arg(1), p, [](T x, T y) { return x <= y ? x : y; });
    case Op::Max: return map2(n, arg(0), arg(1), p, [](T x, T y) { return y <= x ? x : y; });
    case Op::LessEq:
      return map2(n, arg(0), arg(1), p, [](T x, T y) { return x <= y ? T(1) : T(0); });
    case Op::Clip:
      return map3(n, arg(0), arg(1), arg(2), p,
                  [](T x, T lo, T hi) { return x < lo ? lo : (x > hi ? hi : x); });
    case Op::InRange:
      return map3(n, arg(0), arg(1), arg(2), p,
                  [](T x, T lo, T hi) { return lo <= x && x <= hi ? T(1) : T(0); });
    case Op::MatMul: return matmul(n, g, arg(0), arg(1));
    case Op::Outer:
      return perElement(n, false, [&](int b, T *po) {
        const T *x = arg(0).at(b), *y = arg(1).at(b);
        int64_t M = n.shape[0], K = n.shape[1];
        for (int64_t i = 0; i < M; ++i)
          for (int64_t j = 0; j < K; ++j)
            po[i * K + j] = x[i] * y[j];
      });
    case Op::Transpose:
      return perElement(n, false, [&](int b, T *po) {
        const T *x = arg(0).at(b);
        int64_t R = n.shape[1], C = n.shape[0]; // the operand is [R, C]
        for (int64_t i = 0; i < R; ++i)
          for (int64_t j = 0; j < C; ++j)
            po[j * R + i] = x[i * C + j];
      });
    case Op::Reshape: {
      Value v = arg(0);
      v.numel = N;
      return v;
    }
    case Op::SumAll:
      return perElement(n, false, [&](int b, T *po) {
        const T *x = arg(0).at(b);
        T sum = 0;
        for (int64_t e = 0; e < arg(0).numel; ++e)
          sum += x[e];
        po[0] = sum;
      });
    case Op::SumAxis: {
      const ir::Shape &s = g.node(n.operands[0]).shape;
      int64_t outer = 1, len = s[size_t(n.index)], inner = 1;
      for (int i = 0; i < n.index; ++i)
        outer *= s[size_t(i)];
      for (size_t i = size_t(n.index) + 1; i < s.size(); ++i)
        inner *= s[i];
      return perElement(n, true, [&](int b, T *po) {
        const T *x = arg(0).at(b);
        for (int64_t o = 0; o < outer; ++o)
          for (int64_t k = 0; k < len; ++k)
            for (int64_t i = 0; i < inner; ++i)
              po[o * inner + i] += x[(o * len + k) * inner + i];
      });
    }
    case Op::ReduceTo: return scatter(n, arg(0), p.tables[0], /*accumulate=*/true);
    case Op::BroadcastTo: return gather(n, arg(0), p.tables[0]);
    case Op::Concat:
      return perElement(n, false, [&](int b, T *po) {
        for (size_t k = 0; k < n.operands.size(); ++k) {
          const T *x = arg(k).at(b);
          po = std::copy(x, x + arg(k).numel, po);
        }
      });
    case Op::Slice: return gather(n, arg(0), p.tables[0]);
    case Op::SliceGrad: return scatter(n, arg(0), p.tables[0], /*accumulate=*/false);
    case Op::Softmax:
    case Op::LogSoftmax:
      return perElement(n, false, [&](int b, T *po) {
        const T *x = arg(0).at(b);
        T mx = x[0];
        for (int64_t e = 1; e < N; ++e)
          mx = std::max(mx, x[e]);
        T sum = 0;
        for (int64_t e = 0; e < N; ++e)
          sum += std::exp(x[e] - mx);
        T logZ = mx + std::log(sum);
        for (int64_t e = 0; e < N; ++e)
          po[e] = n.op == Op::Softmax ? std::exp(x[e] - logZ) : x[e] - logZ;
      });
    case Op::Gather: {
      const Node &tableNode = g.node(n.operands[0]);
      int64_t V = tableNode.shape[0], D = tableNode.shape[1];
      Value out = allocRaw(batch, N);
      for (int b = 0; b < batch; ++b) {
        int64_t row = rowIndex(g, n.operands[1], arg(1), b, V);
        std::copy(arg(0).at(b) + row * D, arg(0).at(b) + (row + 1) * D, out.mut() + b * N);
      }
      return out;
    }
    default: break;
    }
    throw std::logic_error(std::string("generic executor: unexpected op ") + ir::opName(n.op));
  }

  int64_t rowIndex(const Graph &g, int indexNode, const Value &v, int b, int64_t rows) const {
    T x = v.at(b)[0];
    if (!(x >= 0) || x >= T(rows) || x != std::floor(x)) {
      const std::string &name = g.inputs[size_t(g.node(indexNode).index)].name;
      throw std::runtime_error("input '" + name + "' of batch element " + std::to_string(b) +
                               " is " + std::to_string(double(x)) +
                               ", not an integer index in [0, " + std::to_string(rows) + ")");
    }
    return int64_t(x);
  }

  Value paramView(int index) const {
    return view(owner.paramBuf.data() + owner.netInfo.paramOffsets[size_t(index)], 1,
                int64_t(owner.netInfo.params[size_t(index)].numel()));
  }

  // --- steps ---------------------------------------------------------------

  void forwardStep(const T *const *inputs, T *const *outputs) {
    int B = owner.B;
    std::vector<Value> vals(fwd.nodes.size());
    Record rec;
    for (size_t k = 0; k < fwd.inputs.size(); ++k)
      rec.inputs.push_back(copyOf(inputs[k], B, ir::numElements(fwd.inputs[k].shape)));
    for (size_t i = 0; i < fwd.nodes.size(); ++i) {
      const Node &n = fwd.nodes[i];
      switch (n.op) {
      case Op::Const: vals[i] = fwdConsts[i]; break;
      case Op::Param: vals[i] = paramView(n.index); break;
      case Op::Input: vals[i] = rec.inputs[size_t(n.index)]; break;
      case Op::State: vals[i] = states[size_t(n.index)]; break;
      default: vals[i] = eval(fwd, n, vals, fwdPlans[i]); break;
      }
    }
    for (size_t k = 0; k < fwd.outputs.size(); ++k) {
      Value v = expand(vals[size_t(fwd.outputs[k].node)]);
      std::copy(v.data, v.data + size_t(B) * size_t(v.numel), outputs[k]);
    }
    for (int id : savedNodes)
      rec.saved.push_back(vals[size_t(id)]);
    tape.push_back(std::move(rec));
    for (size_t s = 0; s < fwd.states.size(); ++s)
      states[s] = expand(vals[size_t(fwd.stateUpdates[s])]);
  }

  void backwardPass(const T *const *const *outputGrads, const T *const *finalStateGrads,
                    T *const *const *inputGrads) {
    int B = owner.B;
    std::vector<Value> gState(fwd.states.size());
    for (size_t s = 0; s < fwd.states.size(); ++s) {
      int64_t numel = ir::numElements(fwd.states[s].shape);
      gState[s] = finalStateGrads && finalStateGrads[s] ? copyOf(finalStateGrads[s], B, numel)
                                                        : alloc(B, numel);
    }
    std::vector<Value> zeroOutputs;
    zeroOutputs.reserve(fwd.outputs.size());
    for (const ir::Output &o : fwd.outputs)
      zeroOutputs.push_back(alloc(1, ir::numElements(fwd.node(o.node).shape)));
    std::vector<Value> vals(bwd.nodes.size());
    for (int t = int(tape.size()) - 1; t >= 0; --t) {
      const Record &rec = tape[size_t(t)];
      for (size_t i = 0; i < bwd.nodes.size(); ++i) {
        const Node &n = bwd.nodes[i];
        switch (n.op) {
        case Op::Const: vals[i] = bwdConsts[i]; break;
        case Op::Param: vals[i] = paramView(n.index); break;
        case Op::Input: vals[i] = rec.inputs[size_t(n.index)]; break;
        case Op::FwdValue: vals[i] = rec.saved[size_t(savedSlot[size_t(n.index)])]; break;
        case Op::GradOutput: {
          const T *g = outputGrads && outputGrads[t] ? outputGrads[t][n.index] : nullptr;
          vals[i] = g ? view(g, B, ir::numElements(n.shape)) : zeroOutputs[size_t(n.index)];
          break;
        }
        case Op::GradState: vals[i] = gState[size_t(n.index)]; break;
        default: vals[i] = eval(bwd, n, vals, bwdPlans[i]); break;
        }
      }
      for (const ir::ParamGrad &pg : bwd.paramGrads) {
        const Value &v = vals[size_t(pg.node)];
        T *grad = owner.gradBuf.data() + owner.netInfo.paramOffsets[size_t(pg.param)];
        if (pg.rowIndex < 0) {
          // Sum over the batch; a value shared by the batch counts once per element.
          T scale = v.batch == 1 ? T(B) : T(1);
          for (int b = 0; b < v.batch; ++b) {
            const T *x = v.at(b);
            for (int64_t e = 0; e < v.numel; ++e)
              grad[e] += scale * x[e];
          }
        } else {
          int64_t rows = owner.netInfo.params[size_t(pg.param)].shape[0];
          for (int b = 0; b < B; ++b) {
            int64_t row = rowIndex(bwd, pg.rowIndex, vals[size_t(pg.rowIndex)], b, rows);
            const T *x = v.at(b);
            for (int64_t e = 0; e < v.numel; ++e)
              grad[row * v.numel + e] += x[e];
          }
        }
      }
      for (size_t s = 0; s < fwd.states.size(); ++s)
        gState[s] = bwd.stateGrads[s] >= 0 ? expand(vals[size_t(bwd.stateGrads[s])])
                                           : alloc(B, ir::numElements(fwd.states[s].shape));
      if (inputGrads && inputGrads[t])
        copyInputGrads(vals, inputGrads[t]);
    }
    tape.clear();
  }

  /// dLoss/d input k of this step into out[k] (B * numel; zeros where the graph has none).
  void copyInputGrads(const std::vector<Value> &vals, T *const *out) {
    int B = owner.B;
    for (size_t k = 0; k < fwd.inputs.size(); ++k) {
      if (!out[k])
        continue;
      int64_t numel = ir::numElements(fwd.inputs[k].shape);
      if (bwd.inputGrads[k] < 0) {
        std::fill(out[k], out[k] + B * numel, T(0));
        continue;
      }
      Value v = expand(vals[size_t(bwd.inputGrads[k])]);
      for (int b = 0; b < B; ++b)
        std::copy(v.at(b), v.at(b) + numel, out[k] + b * numel);
    }
  }
};

template <class T>
Executor<T>::Executor(const Graph &forward, const Graph &backward)
    : netInfo(makeNetworkInfo(forward)) {
  impl = std::make_unique<Impl>(forward, backward, *this);
  paramBuf.assign(netInfo.numParams, T(0));
  gradBuf.assign(netInfo.numParams, T(0));
}

template <class T> Executor<T>::~Executor() = default;

template <class T> void Executor<T>::beginEpisode(int batch) {
  if (batch < 1)
    throw std::invalid_argument("batch size must be at least 1");
  B = batch;
  impl->tape.clear();
  impl->states.clear();
  for (const ir::Variable &s : impl->fwd.states)
    impl->states.push_back(impl->alloc(B, ir::numElements(s.shape), T(s.init.a)));
}

template <class T> void Executor<T>::step(const T *const *inputs, T *const *outputs) {
  if (B == 0)
    throw std::logic_error("step() before beginEpisode()");
  impl->forwardStep(inputs, outputs);
}

template <class T>
void Executor<T>::backward(const T *const *const *outputGrads, const T *const *finalStateGrads,
                           T *const *const *inputGrads) {
  if (inputGrads && impl->bwd.inputGrads.empty())
    throw std::logic_error("network '" + netInfo.name +
                           "' was differentiated without input gradients");
  impl->backwardPass(outputGrads, finalStateGrads, inputGrads);
}

template <class T> void Executor<T>::truncate() { impl->tape.clear(); }
template <class T> int Executor<T>::recordedSteps() const { return int(impl->tape.size()); }
template <class T> const T *Executor<T>::state(int s) const { return impl->states[size_t(s)].data; }

template <class T> void Executor<T>::setState(int s, const T *values) {
  if (s < 0 || size_t(s) >= impl->states.size())
    throw std::out_of_range("setState: no state " + std::to_string(s));
  if (!impl->tape.empty())
    throw std::logic_error("setState: only right after beginEpisode() or truncate()");
  impl->states[size_t(s)] =
      impl->copyOf(values, B, ir::numElements(impl->fwd.states[size_t(s)].shape));
}

template <class T> size_t Executor<T>::tapeBytes() const {
  size_t bytes = 0;
  for (const auto &rec : impl->tape) {
    for (const auto &v : rec.saved)
      bytes += v.bytes();
    for (const auto &v : rec.inputs)
      bytes += v.bytes();
  }
  return bytes;
}

namespace {
/// Elements of node `n`'s value for `batch` elements: one tensor per element when it varies
/// across the batch, else one for all.
int64_t valueElements(const ir::Node &n, int64_t batch) {
  return saturatingMul(ir::numElements(n.shape), n.batched ? batch : 1);
}

/// Entries of the executor's index tables for `g` (one int64_t each, built with the executor):
/// element-wise ops with a broadcast operand, broadcasts, reductions and slices address their
/// operands through them.
int64_t tableEntries(const ir::Graph &g) {
  int64_t n = 0;
  for (const ir::Node &node : g.nodes) {
    int64_t own = ir::numElements(node.shape);
    if (ir::isElementwise(node.op)) {
      for (int o : node.operands) {
        const ir::Shape &s = g.node(o).shape;
        if (s != node.shape && ir::numElements(s) != 1)
          n = saturatingAdd(n, own);
      }
    } else if (node.op == ir::Op::BroadcastTo) {
      n = saturatingAdd(n, own);
    } else if (node.op == ir::Op::ReduceTo) {
      n = saturatingAdd(n, ir::numElements(g.node(node.operands[0]).shape));
    } else if (node.op == ir::Op::Slice || node.op == ir::Op::SliceGrad) {
      n = saturatingAdd(n, std::min(own, ir::numElements(g.node(node.operands[0]).shape)));
    }
  }
  return n;
}

} // namespace

int64_t dopa::estimateEpisodeBytes(const ir::Graph &fwd, const ir::Graph &bwd, int64_t batch,
                                   int64_t steps) {
  int64_t inputs = 0;
  for (const ir::Variable &in : fwd.inputs)
    inputs = saturatingAdd(inputs, ir::numElements(in.shape));
  // One step on the tape: its inputs, and the forward values the backward graph reads (parameters,
  // inputs and constants among them are not copies).
  int64_t tapeStep = saturatingMul(inputs, batch);
  std::vector<bool> saved(fwd.nodes.size(), false);
  for (const ir::Node &n : bwd.nodes) {
    if (n.op != ir::Op::FwdValue || n.index < 0 || size_t(n.index) >= saved.size() ||
        saved[size_t(n.index)])
      continue;
    saved[size_t(n.index)] = true;
    const ir::Node &value = fwd.node(n.index);
    if (value.op != ir::Op::Param && value.op != ir::Op::Input && value.op != ir::Op::Const)
      tapeStep = saturatingAdd(tapeStep, valueElements(value, batch));
  }
  // One step's values: every op's result, and the states (the other leaves are views).
  int64_t working = 0;
  for (const ir::Graph *g : {&fwd, &bwd})
    for (const ir::Node &n : g->nodes)
      if (!ir::isLeaf(n.op) || n.op == ir::Op::State)
        working = saturatingAdd(working, valueElements(n, batch));
  int64_t tables = saturatingAdd(tableEntries(fwd), tableEntries(bwd));
  return saturatingAdd(
      saturatingMul(saturatingAdd(saturatingMul(steps, tapeStep), working), int64_t(sizeof(float))),
      saturatingMul(tables, int64_t(sizeof(int64_t))));
}

template class dopa::Executor<float>;
template class dopa::Executor<double>;
