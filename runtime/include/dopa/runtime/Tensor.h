//===- Tensor.h - Dense tensors with aligned storage, mapped to Eigen ------===//
//
// Tensor<T> is a handle to a dense row-major array with a shape: either owning 64-byte-aligned
// storage (shared between copies of the handle, as in a framework; clone() copies the data) or a
// view of memory owned elsewhere (a parameter inside the flat parameter buffer). matrix() and
// vector() map it to Eigen without copying.
//
//===----------------------------------------------------------------------===//
#pragma once

#include <Eigen/Core>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

namespace dopa {

template <class T> class Tensor {
public:
  using MatrixMap = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
  using VectorMap = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, 1>>;
  static constexpr size_t alignment = 64;

  Tensor() = default;

  /// Owning storage of `shape`, filled with `fill`.
  explicit Tensor(std::vector<int64_t> shape, T fill = T(0)) : dims(std::move(shape)) {
    count = product(dims);
    size_t bytes = (size_t(count) * sizeof(T) + alignment - 1) / alignment * alignment;
    void *p = std::aligned_alloc(alignment, bytes == 0 ? alignment : bytes);
    if (!p)
      throw std::bad_alloc();
    storage = std::shared_ptr<T>(static_cast<T *>(p), [](T *q) { std::free(q); });
    ptr = storage.get();
    std::fill(ptr, ptr + count, fill);
  }

  /// A tensor over storage allocated elsewhere (a caching allocator); `storage` owns the memory.
  static Tensor adopt(std::shared_ptr<T> storage, std::vector<int64_t> shape) {
    Tensor t;
    t.dims = std::move(shape);
    t.count = product(t.dims);
    t.storage = std::move(storage);
    t.ptr = t.storage.get();
    return t;
  }

  /// A view of `count(shape)` elements at `data`, owned elsewhere.
  static Tensor view(T *data, std::vector<int64_t> shape) {
    Tensor t;
    t.dims = std::move(shape);
    t.count = product(t.dims);
    t.ptr = data;
    return t;
  }

  /// A deep copy with owning storage.
  Tensor clone() const {
    Tensor t(dims);
    std::copy(ptr, ptr + count, t.ptr);
    return t;
  }

  T *data() const { return ptr; }
  int64_t numel() const { return count; }
  const std::vector<int64_t> &shape() const { return dims; }
  size_t rank() const { return dims.size(); }
  bool owning() const { return storage != nullptr; }
  size_t bytes() const { return size_t(count) * sizeof(T); }
  T &operator[](int64_t i) const { return ptr[i]; }

  /// The same elements under another shape with the same element count.
  Tensor reshaped(std::vector<int64_t> shape) const {
    if (product(shape) != count)
      throw std::invalid_argument("reshape changes the element count");
    Tensor t = *this;
    t.dims = std::move(shape);
    return t;
  }

  /// Rank 2 as a row-major matrix; rank 1 as a column; higher ranks fold the leading axes into
  /// rows.
  MatrixMap matrix() const {
    int64_t cols = dims.empty() ? 1 : dims.back();
    return MatrixMap(ptr, cols == 0 ? 0 : count / cols, cols);
  }
  VectorMap vector() const { return VectorMap(ptr, count); }

private:
  static int64_t product(const std::vector<int64_t> &shape) {
    int64_t n = 1;
    for (int64_t d : shape) {
      if (d < 0)
        throw std::invalid_argument("negative tensor size");
      n *= d;
    }
    return n;
  }

  std::shared_ptr<T> storage;
  T *ptr = nullptr;
  std::vector<int64_t> dims;
  int64_t count = 0;
};

} // namespace dopa
