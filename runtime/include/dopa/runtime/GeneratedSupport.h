//===- GeneratedSupport.h - What generated C++ networks include -----------===//
//
// The one header the C++ that dopac generates includes, so that a generated file holds only the
// network's own code: the runtime's side of generated networks (GeneratedSpec, StepArgs, the
// network description), the math functions the scalar code calls (SimdMath.h: exp, tanh and
// sigmoid that vectorize), the bfloat16 trace storage (Bf16.h, dopac --trace-precision=bf16), and
// the Eigen views its dense products use: a buffer mapped (row-major, without copying) as a column
// vector, a row vector or a matrix, each also read-only (Const*). They live in dopa::generated, the
// namespace around every generated network's, so that generated code names them unqualified
// (`Vec<T>(c, 200)`).
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dopa/runtime/Bf16.h"
#include "dopa/runtime/Generated.h"
#include "dopa/runtime/SimdMath.h"

#include <Eigen/Core>

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace dopa::generated {

/// `n` elements at `p` as a column vector: Vec<T>(p, n).
template <class T> using Vec = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, 1>>;
template <class T> using ConstVec = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, 1>>;

/// `n` elements at `p` as a row vector: RowVec<T>(p, n).
template <class T> using RowVec = Eigen::Map<Eigen::Matrix<T, 1, Eigen::Dynamic>>;
template <class T> using ConstRowVec = Eigen::Map<const Eigen::Matrix<T, 1, Eigen::Dynamic>>;

/// `rows * cols` elements at `p` as a row-major matrix: RowMat<T>(p, rows, cols).
template <class T>
using RowMat = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;
template <class T>
using ConstRowMat =
    Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;

} // namespace dopa::generated
