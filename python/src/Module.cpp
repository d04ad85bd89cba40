//===- Module.cpp - The Python extension _dopa: compiled networks on NumPy ---------------===//
//
// The extension behind the Python package `dopa` (python/dopa/__init__.py re-exports it).
// `_compile` runs jit::compileNetwork (the spec compiled into a shared library, or loaded from the
// cache) and wraps the network's GeneratedExecutor<float> or <double> in a `Network`:
//   - parameters and gradients are NumPy views of the executor's flat buffers (zero-copy and
//     writable; every view holds a reference to the Network, so the buffer outlives it);
//   - forward() takes one [T, B, *shape] array per input, runs the executor's T steps with the GIL
//     released and returns new [T, B, *shape] output arrays; backward() runs BPTT over those
//     steps and accumulates (+=) the parameter gradients;
//   - every argument is checked before anything runs (count, names, dtype, shape, batch, index
//     values), so a mistake is a Python exception naming the argument, never a crash or a silent
//     cast: a float input must have the network's dtype exactly (float64 into a float32 network is
//     a TypeError); only index inputs (`int` in the spec) also take integer arrays, converted.
//     Non-contiguous arrays are copied.
// C++ exceptions map to Python ones: jit::SpecError -> dopa.SpecError (a ValueError),
// jit::BuildError -> dopa.BuildError (a RuntimeError), std::invalid_argument -> ValueError,
// std::logic_error and std::runtime_error -> RuntimeError. A mutex per network serializes calls
// from several Python threads (taken only with the GIL released, or for work that runs no Python).
//
//===----------------------------------------------------------------------------------------===//
#include "dopa/jit/NetworkCache.h"
#include "dopa/runtime/DimOverrides.h"
#include "dopa/runtime/Generated.h"
#include "dopa/runtime/Network.h"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace py = pybind11;
using dopa::GeneratedExecutor;
using dopa::NetworkInfo;
using dopa::TensorInfo;

namespace {

//===----------------------------------------------------------------------===//
// Argument checking
//===----------------------------------------------------------------------===//

/// "(5, 2, 27)", "(4,)", "()": a shape as Python prints a tuple.
std::string tupleText(const std::vector<std::string> &dims) {
  std::string out = "(";
  for (size_t i = 0; i < dims.size(); ++i)
    out += (i ? ", " : "") + dims[i];
  return out + (dims.size() == 1 ? ",)" : ")");
}

std::string shapeOf(const py::array &a) {
  std::vector<std::string> dims;
  for (py::ssize_t i = 0; i < a.ndim(); ++i)
    dims.push_back(std::to_string(a.shape(i)));
  return tupleText(dims);
}

/// The shape an argument should have: its leading axes (named, like "T", or numbers), then the
/// tensor's per-element shape.
std::string expectedShape(const std::vector<std::string> &lead, const std::vector<int64_t> &shape) {
  std::vector<std::string> dims = lead;
  for (int64_t d : shape)
    dims.push_back(std::to_string(d));
  return tupleText(dims);
}

std::string namesText(const std::vector<TensorInfo> &tensors) {
  if (tensors.empty())
    return "none";
  std::string out;
  for (const TensorInfo &t : tensors)
    out += (out.empty() ? "" : ", ") + t.name;
  return out;
}

int findTensor(const std::vector<TensorInfo> &tensors, const std::string &name) {
  for (size_t i = 0; i < tensors.size(); ++i)
    if (tensors[i].name == name)
      return int(i);
  return -1;
}

std::string typeName(py::handle obj) {
  return py::str(py::type::handle_of(obj).attr("__name__")).cast<std::string>();
}

std::string plural(size_t n, const std::string &noun) {
  return std::to_string(n) + " " + noun + (n == 1 ? "" : "s");
}

/// The values of forward()'s inputs or backward()'s output gradients, in the order of `tensors`:
/// positionally (exactly one per tensor) or by name (one dict as the only positional argument, or
/// keywords). Tensors missing from a by-name call are None when `optional`, an error otherwise.
/// `fn` names the call ("forward()"), `noun` a tensor ("input", "output") and `countNoun` what is
/// passed per tensor ("input", "output gradient").
std::vector<py::object> gatherArgs(const std::string &fn, const std::string &noun,
                                   const std::string &countNoun, const std::string &network,
                                   const std::vector<TensorInfo> &tensors, const py::args &args,
                                   const py::dict &named, bool optional) {
  std::vector<py::object> out(tensors.size(), py::none());
  py::dict byName;
  py::object first = args.empty() ? py::object(py::none()) : py::object(args[0]);
  if (args.size() == 1 && py::isinstance<py::dict>(first)) {
    if (!named.empty())
      throw py::type_error(fn + ": pass the " + countNoun +
                           "s as one dict or as keywords, not both");
    byName = py::reinterpret_borrow<py::dict>(first);
  } else if (!named.empty()) {
    if (!args.empty())
      throw py::type_error(fn + ": pass the " + countNoun + "s positionally or by name, not both");
    byName = named;
  } else {
    if (args.size() != tensors.size())
      throw py::type_error(fn + ": network '" + network + "' takes " +
                           plural(tensors.size(), countNoun) + " (" + namesText(tensors) +
                           "), got " + std::to_string(args.size()));
    for (size_t k = 0; k < tensors.size(); ++k)
      out[k] = py::object(args[k]);
    return out;
  }
  for (auto item : byName) {
    if (!py::isinstance<py::str>(item.first))
      throw py::type_error(fn + ": " + noun + " names must be strings, got " +
                           typeName(item.first));
    std::string key = item.first.cast<std::string>();
    int k = findTensor(tensors, key);
    if (k < 0)
      throw py::value_error(fn + ": network '" + network + "' has no " + noun + " '" + key + "' (" +
                            noun + "s: " + namesText(tensors) + ")");
    out[size_t(k)] = py::reinterpret_borrow<py::object>(item.second);
  }
  if (!optional)
    for (size_t k = 0; k < tensors.size(); ++k)
      if (out[k].is_none())
        throw py::value_error(fn + ": missing " + noun + " '" + tensors[k].name + "'");
  return out;
}

/// A C-contiguous NumPy array of T.
template <class T> using CArray = py::array_t<T, py::array::c_style | py::array::forcecast>;

/// `obj` as a C-contiguous array of T. Only an ndarray is taken; its dtype must be T's float type
/// (any byte order), or, for an index input (`isIndex`), any integer type: no silent casts between
/// float types. A non-contiguous array, another byte order or integers are converted (copied).
template <class T> CArray<T> asArray(py::handle obj, const std::string &arg, bool isIndex) {
  py::dtype want = py::dtype::of<T>();
  std::string wantName = py::str(want).cast<std::string>();
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(arg + " must be a numpy.ndarray of " + wantName + ", not " +
                         typeName(obj));
  auto arr = py::reinterpret_borrow<py::array>(obj);
  py::dtype dt = arr.dtype();
  bool sameFloat = dt.kind() == 'f' && dt.itemsize() == py::ssize_t(sizeof(T));
  bool integer = dt.kind() == 'i' || dt.kind() == 'u';
  if (!sameFloat && !(isIndex && integer))
    throw py::type_error(arg + " has dtype " + py::str(dt).cast<std::string>() + ", expected " +
                         wantName + (isIndex ? " or an integer dtype (it holds indices)" : "") +
                         " (the network's dtype; dopa does not cast floats silently: convert "
                         "with .astype(numpy." +
                         wantName + "))");
  if (integer && arr.size() > 0) {
    // Indices above 2^24 (float) or 2^53 (double) would round to a neighbouring index when cast:
    // refuse them here, before the cast hides them (the range check against the table follows).
    py::object largest = py::module_::import("numpy").attr("max")(arr);
    py::object smallest = py::module_::import("numpy").attr("min")(arr);
    long double exact = std::ldexp(1.0L, std::numeric_limits<T>::digits);
    if (largest.cast<long double>() > exact || smallest.cast<long double>() < -exact)
      throw py::value_error(arg + " holds an index beyond " + wantName + "'s exact integers (2^" +
                            std::to_string(std::numeric_limits<T>::digits) + ")");
  }
  CArray<T> out = CArray<T>::ensure(arr);
  if (!out)
    throw py::type_error(arg + ": could not be converted to a contiguous " + wantName + " array");
  return out;
}

/// The ValueError for an argument of the wrong shape.
py::value_error shapeError(const std::string &arg, const py::array &a,
                           const std::vector<std::string> &lead,
                           const std::vector<int64_t> &shape) {
  return py::value_error(arg + " has shape " + shapeOf(a) + ", expected " +
                         expectedShape(lead, shape));
}

/// Check that `a` has `lead.size()` leading axes and then exactly `shape`.
void checkTrailing(const py::array &a, const std::string &arg, const std::vector<std::string> &lead,
                   const std::vector<int64_t> &shape) {
  size_t numLead = lead.size();
  if (size_t(a.ndim()) != numLead + shape.size())
    throw shapeError(arg, a, lead, shape);
  for (size_t i = 0; i < shape.size(); ++i)
    if (a.shape(py::ssize_t(numLead + i)) != shape[i])
      throw shapeError(arg, a, lead, shape);
}

py::tuple shapeTuple(const std::vector<int64_t> &shape) {
  py::tuple out(shape.size());
  for (size_t i = 0; i < shape.size(); ++i)
    out[i] = py::int_(shape[i]);
  return out;
}

py::list namesOf(const std::vector<TensorInfo> &tensors) {
  py::list out;
  for (const TensorInfo &t : tensors)
    out.append(t.name);
  return out;
}

py::dict shapesOf(const std::vector<TensorInfo> &tensors) {
  py::dict out;
  for (const TensorInfo &t : tensors)
    out[py::str(t.name)] = shapeTuple(t.shape);
  return out;
}

//===----------------------------------------------------------------------===//
// The network
//===----------------------------------------------------------------------===//

/// What compileNetwork reported, for the Network's properties.
struct CompileInfo {
  std::string key, entryDir;
  bool fromCache = false;
  double seconds = 0;
};

/// A compiled network as Python sees it, whatever its precision (TypedNetwork<T> implements it).
class PyNetwork {
public:
  explicit PyNetwork(CompileInfo result) : compiled(std::move(result)) {}
  virtual ~PyNetwork() = default;
  PyNetwork(const PyNetwork &) = delete;
  PyNetwork &operator=(const PyNetwork &) = delete;

  virtual const NetworkInfo &info() const = 0;
  virtual const char *specPath() const = 0;
  virtual py::dtype dtype() const = 0;
  /// The parameter or gradient buffer as one 1-D view (`owner` becomes the view's base).
  virtual py::array flat(py::handle owner, bool grads) = 0;
  /// One view per parameter, shaped as the parameter.
  virtual py::dict views(py::handle owner, bool grads) = 0;
  virtual void zeroGrad() = 0;
  virtual void initParams(uint64_t seed) = 0;
  virtual py::tuple forward(const py::args &args, const py::kwargs &kwargs) = 0;
  virtual py::tuple backward(const py::args &args, const py::kwargs &kwargs) = 0;
  virtual py::dict getState() = 0;
  virtual void setState(const py::dict &values) = 0;
  virtual int batch() = 0;
  virtual int recordedSteps() = 0;

  /// Changes whenever the record of steps that backward() differentiates changes: every
  /// forward(), backward() and set_state(). dopa.torch compares it to know whether a graph
  /// node's steps are still the recorded ones.
  int64_t recordId() {
    std::lock_guard<std::mutex> lock(busy);
    return recordCounter;
  }

  const CompileInfo compiled;

protected:
  std::mutex busy;
  int64_t recordCounter = 0;
};

template <class T> class TypedNetwork final : public PyNetwork {
public:
  TypedNetwork(const dopa::GeneratedSpec &spec, CompileInfo result)
      : PyNetwork(std::move(result)), exec(spec) {}

  const NetworkInfo &info() const override { return exec.info(); }
  const char *specPath() const override { return exec.spec().specPath; }
  py::dtype dtype() const override { return py::dtype::of<T>(); }

  py::array flat(py::handle owner, bool grads) override {
    std::vector<T> &buf = grads ? exec.grads() : exec.params();
    return py::array_t<T>(std::vector<py::ssize_t>{py::ssize_t(buf.size())}, buf.data(), owner);
  }

  py::dict views(py::handle owner, bool grads) override {
    std::vector<T> &buf = grads ? exec.grads() : exec.params();
    const NetworkInfo &net = exec.info();
    py::dict out;
    for (size_t p = 0; p < net.params.size(); ++p) {
      std::vector<py::ssize_t> shape(net.params[p].shape.begin(), net.params[p].shape.end());
      out[py::str(net.params[p].name)] =
          py::array_t<T>(shape, buf.data() + net.paramOffsets[p], owner);
    }
    return out;
  }

  void zeroGrad() override {
    std::lock_guard<std::mutex> lock(busy);
    std::fill(exec.grads().begin(), exec.grads().end(), T(0));
  }

  void initParams(uint64_t seed) override {
    std::vector<float> values(exec.info().numParams);
    dopa::initParams(exec.info(), values.data(), seed);
    std::lock_guard<std::mutex> lock(busy);
    std::copy(values.begin(), values.end(), exec.params().begin());
  }

  int batch() override {
    std::lock_guard<std::mutex> lock(busy);
    return exec.batch();
  }
  int recordedSteps() override {
    std::lock_guard<std::mutex> lock(busy);
    return exec.recordedSteps();
  }

  py::tuple forward(const py::args &args, const py::kwargs &kwargs) override;
  py::tuple backward(const py::args &args, const py::kwargs &kwargs) override;
  py::dict getState() override;
  void setState(const py::dict &values) override;

private:
  using Array = CArray<T>;
  GeneratedExecutor<T> exec;
};

bool hasInputNamed(const NetworkInfo &net, const std::string &name) {
  for (const TensorInfo &in : net.inputs)
    if (in.name == name)
      return true;
  return false;
}

template <class T>
py::tuple TypedNetwork<T>::forward(const py::args &args, const py::kwargs &kwargs) {
  const NetworkInfo &net = exec.info();
  bool reset = true;
  py::dict named;
  for (auto item : kwargs) {
    if (py::str(item.first).cast<std::string>() == "reset") {
      // reset= is always the flag; a network's own input named 'reset' goes positionally or in
      // a dict. Refuse what cannot be a flag rather than ask an array for its truth.
      if (py::isinstance<py::array>(item.second) || py::isinstance<py::sequence>(item.second) ||
          py::isinstance<py::dict>(item.second))
        throw py::type_error(
            "forward(): reset= is the flag that starts a new episode (True or False), got " +
            py::str(py::type::of(item.second)).cast<std::string>() +
            (hasInputNamed(net, "reset")
                 ? "; this network's input 'reset' is passed positionally or in a dict"
                 : ""));
      int truth = PyObject_IsTrue(item.second.ptr());
      if (truth < 0)
        throw py::error_already_set();
      reset = truth != 0;
    } else {
      named[item.first] = item.second;
    }
  }
  std::vector<py::object> objs =
      gatherArgs("forward()", "input", "input", net.name, net.inputs, args, named, false);
  if (net.inputs.empty())
    throw py::value_error("forward(): network '" + net.name +
                          "' has no inputs, so the number of steps and the batch size are unknown");

  // Inputs: dtype, shape, and the same steps and batch for all of them.
  size_t nIn = net.inputs.size(), nOut = net.outputs.size();
  std::vector<Array> inputs;
  inputs.reserve(nIn);
  int64_t steps = 0, batch = 0;
  for (size_t k = 0; k < nIn; ++k) {
    const TensorInfo &t = net.inputs[k];
    std::string arg = "forward(): input '" + t.name + "'";
    Array a = asArray<T>(objs[k], arg, t.isInt);
    checkTrailing(a, arg, {"T", "B"}, t.shape);
    if (k == 0) {
      steps = a.shape(0);
      batch = a.shape(1);
    } else if (a.shape(0) != steps || a.shape(1) != batch) {
      throw py::value_error(arg + " has " + plural(size_t(a.shape(0)), "step") + " and batch " +
                            std::to_string(a.shape(1)) + ", but input '" + net.inputs[0].name +
                            "' has " + plural(size_t(steps), "step") + " and batch " +
                            std::to_string(batch));
    }
    inputs.push_back(std::move(a));
  }
  if (steps < 1 || batch < 1)
    throw py::value_error("forward(): the inputs have " + plural(size_t(steps), "step") +
                          " and batch " + std::to_string(batch) + ": both must be at least 1");
  if (steps > INT_MAX || batch > INT_MAX)
    throw py::value_error("forward(): too many steps or batch elements");

  std::vector<int64_t> inNumel(nIn), outNumel(nOut);
  std::vector<const T *> inData(nIn);
  for (size_t k = 0; k < nIn; ++k) {
    inNumel[k] = net.inputs[k].numel();
    inData[k] = inputs[k].data();
  }
  std::vector<const T *> inPtr(nIn);
  auto pointInputs = [&](int64_t t) {
    for (size_t k = 0; k < nIn; ++k)
      inPtr[k] = inData[k] + t * batch * inNumel[k];
  };

  // Index inputs are checked for every step before any runs, so a bad one records nothing.
  bool anyIndex = std::any_of(net.inputs.begin(), net.inputs.end(),
                              [](const TensorInfo &t) { return t.isInt; });
  if (anyIndex)
    for (int64_t t = 0; t < steps; ++t) {
      pointInputs(t);
      try {
        dopa::checkIndexInputs<T>(net, exec.spec().inputRows, inPtr.data(), int(batch));
      } catch (const std::exception &e) {
        throw py::value_error("forward(): step " + std::to_string(t) + ": " + e.what());
      }
    }

  std::vector<py::array_t<T>> outputs;
  std::vector<T *> outData(nOut);
  outputs.reserve(nOut);
  for (size_t k = 0; k < nOut; ++k) {
    const TensorInfo &o = net.outputs[k];
    std::vector<py::ssize_t> shape = {py::ssize_t(steps), py::ssize_t(batch)};
    shape.insert(shape.end(), o.shape.begin(), o.shape.end());
    outputs.emplace_back(shape);
    outData[k] = outputs.back().mutable_data();
    outNumel[k] = o.numel();
  }

  {
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(busy);
    exec.setExpectedSteps(int(steps));
    if (reset || exec.batch() == 0) {
      exec.beginEpisode(int(batch));
    } else {
      if (exec.batch() != batch)
        throw std::invalid_argument(
            "forward(reset=False): the inputs have batch " + std::to_string(batch) +
            ", but the network's carried state has batch " + std::to_string(exec.batch()) +
            " (reset=True starts a new episode)");
      exec.truncate(); // the steps recorded before are dropped; the state is kept
    }
    ++recordCounter;
    // All the steps in one call: the batched readouts run as one GEMM over them.
    const auto numSteps = static_cast<size_t>(steps);
    std::vector<std::vector<const T *>> stepIn(numSteps, std::vector<const T *>(nIn));
    std::vector<std::vector<T *>> stepOut(numSteps, std::vector<T *>(nOut));
    std::vector<const T *const *> inAt(numSteps);
    std::vector<T *const *> outAt(numSteps);
    for (int64_t t = 0; t < steps; ++t) {
      pointInputs(t);
      stepIn[size_t(t)] = inPtr;
      for (size_t k = 0; k < nOut; ++k)
        stepOut[size_t(t)][k] = outData[k] + t * batch * outNumel[k];
      inAt[size_t(t)] = stepIn[size_t(t)].data();
      outAt[size_t(t)] = stepOut[size_t(t)].data();
    }
    try {
      exec.forward(int(steps), inAt.data(), outAt.data());
    } catch (...) {
      exec.truncate();
      ++recordCounter;
      throw;
    }
  }
  py::tuple result(nOut);
  for (size_t k = 0; k < nOut; ++k)
    result[k] = outputs[k];
  return result;
}

template <class T>
py::tuple TypedNetwork<T>::backward(const py::args &args, const py::kwargs &kwargs) {
  const NetworkInfo &net = exec.info();
  int steps = 0, batch = 0;
  int64_t record = 0;
  {
    std::lock_guard<std::mutex> lock(busy);
    steps = exec.recordedSteps();
    batch = exec.batch();
    record = recordCounter;
  }
  if (steps == 0)
    throw std::logic_error(
        "backward(): no recorded steps to differentiate: call forward() first (each backward() "
        "consumes the steps of the forward() before it, and set_state() drops them)");
  py::dict named;
  for (auto item : kwargs)
    named[item.first] = item.second;
  std::vector<py::object> objs = gatherArgs("backward()", "output", "output gradient", net.name,
                                            net.outputs, args, named, true);

  size_t nOut = net.outputs.size();
  std::vector<Array> grads;
  grads.reserve(nOut);
  std::vector<const T *> data(nOut, nullptr);
  std::vector<int64_t> numel(nOut);
  std::vector<std::string> lead = {std::to_string(steps), std::to_string(batch)};
  for (size_t k = 0; k < nOut; ++k) {
    const TensorInfo &o = net.outputs[k];
    numel[k] = o.numel();
    if (objs[k].is_none())
      continue;
    std::string arg = "backward(): the gradient of output '" + o.name + "'";
    Array a = asArray<T>(objs[k], arg, false);
    checkTrailing(a, arg, lead, o.shape);
    if (a.shape(0) != steps || a.shape(1) != batch)
      throw py::value_error(arg + " has shape " + shapeOf(a) + ", expected " +
                            expectedShape(lead, o.shape) + ": the last forward() ran " +
                            plural(size_t(steps), "step") + " of batch " + std::to_string(batch));
    data[k] = a.data();
    grads.push_back(std::move(a));
  }

  std::vector<std::vector<const T *>> rows(static_cast<size_t>(steps),
                                           std::vector<const T *>(nOut));
  std::vector<const T *const *> perStep(static_cast<size_t>(steps));
  for (int t = 0; t < steps; ++t) {
    for (size_t k = 0; k < nOut; ++k)
      rows[size_t(t)][k] = data[k] ? data[k] + int64_t(t) * batch * numel[k] : nullptr;
    perStep[size_t(t)] = rows[size_t(t)].data();
  }
  // dLoss/d each real input, [T, B, *shape] (integer inputs have none: None).
  size_t nIn = net.inputs.size();
  py::tuple inputGrads(nIn);
  std::vector<T *> dxData(nIn, nullptr);
  for (size_t k = 0; k < nIn; ++k) {
    if (net.inputs[k].isInt) {
      inputGrads[k] = py::none();
      continue;
    }
    std::vector<py::ssize_t> shape = {steps, batch};
    shape.insert(shape.end(), net.inputs[k].shape.begin(), net.inputs[k].shape.end());
    py::array_t<T> dx(shape);
    dxData[k] = dx.mutable_data();
    inputGrads[k] = dx;
  }
  std::vector<std::vector<T *>> dxRows(static_cast<size_t>(steps), std::vector<T *>(nIn));
  std::vector<T *const *> dxPerStep(static_cast<size_t>(steps));
  for (int t = 0; t < steps; ++t) {
    for (size_t k = 0; k < nIn; ++k)
      dxRows[size_t(t)][k] =
          dxData[k] ? dxData[k] + int64_t(t) * batch * net.inputs[k].numel() : nullptr;
    dxPerStep[size_t(t)] = dxRows[size_t(t)].data();
  }
  {
    py::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(busy);
    if (recordCounter != record)
      throw std::logic_error("backward(): another thread ran this network since the checks");
    ++recordCounter;
    exec.backward(perStep.data(), nullptr, dxPerStep.data());
  }
  return inputGrads;
}

template <class T> py::dict TypedNetwork<T>::getState() {
  const NetworkInfo &net = exec.info();
  std::vector<std::vector<T>> values(net.states.size());
  int batch = 0;
  {
    std::lock_guard<std::mutex> lock(busy);
    batch = exec.batch();
    if (batch == 0)
      throw std::logic_error("get_state(): no episode yet: call forward() or set_state() first");
    for (size_t s = 0; s < net.states.size(); ++s) {
      const T *p = exec.state(int(s));
      values[s].assign(p, p + batch * net.states[s].numel());
    }
  }
  py::dict out;
  for (size_t s = 0; s < net.states.size(); ++s) {
    std::vector<py::ssize_t> shape = {py::ssize_t(batch)};
    shape.insert(shape.end(), net.states[s].shape.begin(), net.states[s].shape.end());
    py::array_t<T> a(shape);
    std::copy(values[s].begin(), values[s].end(), a.mutable_data());
    out[py::str(net.states[s].name)] = a;
  }
  return out;
}

template <class T> void TypedNetwork<T>::setState(const py::dict &values) {
  const NetworkInfo &net = exec.info();
  std::vector<Array> arrays;
  std::vector<int> which;
  int64_t batch = 0;
  std::string first;
  for (auto item : values) {
    if (!py::isinstance<py::str>(item.first))
      throw py::type_error("set_state(): state names must be strings, got " + typeName(item.first));
    std::string name = item.first.cast<std::string>();
    int s = findTensor(net.states, name);
    if (s < 0)
      throw py::value_error("set_state(): network '" + net.name + "' has no state '" + name +
                            "' (states: " + namesText(net.states) + ")");
    std::string arg = "set_state(): state '" + name + "'";
    Array a = asArray<T>(item.second, arg, false);
    checkTrailing(a, arg, {"B"}, net.states[size_t(s)].shape);
    if (arrays.empty()) {
      batch = a.shape(0);
      first = name;
    } else if (a.shape(0) != batch) {
      throw py::value_error(arg + " has batch " + std::to_string(a.shape(0)) + ", but state '" +
                            first + "' has batch " + std::to_string(batch));
    }
    arrays.push_back(std::move(a));
    which.push_back(s);
  }
  if (arrays.empty())
    return;
  if (batch < 1 || batch > INT_MAX)
    throw py::value_error("set_state(): batch " + std::to_string(batch) + ": must be at least 1");
  std::lock_guard<std::mutex> lock(busy);
  // A new batch size starts a new episode (the states not given take their initial values);
  // otherwise the recorded steps are dropped and the given states replaced.
  if (exec.batch() != batch)
    exec.beginEpisode(int(batch));
  else
    exec.truncate();
  ++recordCounter;
  for (size_t i = 0; i < arrays.size(); ++i)
    exec.setState(which[i], arrays[i].data());
}

//===----------------------------------------------------------------------===//
// Compiling and the cache
//===----------------------------------------------------------------------===//

/// compileNetwork's progress lines go to Python's sys.stderr (so notebooks show them).
void reportProgress(const std::string &line) {
  py::gil_scoped_acquire gil;
  try {
    py::object err = py::module_::import("sys").attr("stderr");
    if (!err.is_none()) {
      err.attr("write")("dopa: " + line + "\n");
      err.attr("flush")();
    }
  } catch (const py::error_already_set &) {
    // Progress is a courtesy: a closed or replaced stderr does not stop the compile.
  }
}

std::unique_ptr<PyNetwork> compileSpec(const std::string &specPath,
                                       const std::map<std::string, int64_t> &dims,
                                       const std::string &network, const std::string &dtype,
                                       const std::vector<std::string> &includeDirs,
                                       const std::string &cacheDir, uint64_t seed) {
  if (dtype != "float32" && dtype != "float64")
    throw py::value_error("compile(): dtype must be 'float32' or 'float64', not '" + dtype + "'");
  for (const auto &[name, value] : dims)
    if (value <= 0 || value > dopa::kMaxDimension)
      throw py::value_error("compile(): dimension " + name + "=" + std::to_string(value) +
                            " must be an integer from 1 to " + std::to_string(dopa::kMaxDimension));
  dopa::jit::CompileRequest request{.specPath = specPath,
                                    .includeDirs = includeDirs,
                                    .dims = dims,
                                    .network = network,
                                    .inputGradients = true}; // backward() returns them
  dopa::jit::CacheOptions options;
  options.cacheDir = cacheDir;
  options.progress = reportProgress;
  auto compiled = [&] {
    py::gil_scoped_release release; // seconds of C++ compiler: other Python threads run
    return dopa::jit::compileNetwork(request, options);
  }();
  if (!compiled.spec)
    throw std::runtime_error("compile(): no network was loaded for " + specPath);
  CompileInfo info{.key = compiled.key,
                   .entryDir = compiled.entryDir,
                   .fromCache = compiled.fromCache,
                   .seconds = compiled.seconds};
  std::unique_ptr<PyNetwork> net;
  if (dtype == "float32")
    net = std::make_unique<TypedNetwork<float>>(*compiled.spec, std::move(info));
  else
    net = std::make_unique<TypedNetwork<double>>(*compiled.spec, std::move(info));
  net->initParams(seed);
  return net;
}

std::string cacheDirOr(const std::string &dir) {
  return dir.empty() ? dopa::jit::defaultCacheDir() : dir;
}

py::list cacheList(const std::string &dir) {
  std::vector<dopa::jit::CacheEntry> entries;
  {
    py::gil_scoped_release release; // it reads every entry's files: other Python threads run
    entries = dopa::jit::listCache(cacheDirOr(dir));
  }
  py::list out;
  for (const dopa::jit::CacheEntry &e : entries) {
    py::dict d;
    d["key"] = e.key;
    d["dir"] = e.dir;
    d["spec"] = e.spec;
    d["network"] = e.network;
    d["dims"] = e.dims;
    d["bytes"] = e.bytes;
    d["valid"] = e.valid;
    d["problem"] = e.problem;
    out.append(d);
  }
  return out;
}

std::string reprOf(PyNetwork &n) {
  const NetworkInfo &net = n.info();
  auto list = [](const std::vector<TensorInfo> &tensors) {
    std::string out;
    for (const TensorInfo &t : tensors) {
      std::string shape;
      for (int64_t d : t.shape)
        shape += (shape.empty() ? "" : ", ") + std::to_string(d);
      out += (out.empty() ? "" : ", ") + t.name + (t.isInt ? ":int" : "[" + shape + "]");
    }
    return out;
  };
  return "<dopa.Network " + net.name + " " + py::str(n.dtype()).cast<std::string>() + ", " +
         std::to_string(net.numParams) + " parameters, inputs " + list(net.inputs) + ", outputs " +
         list(net.outputs) + ">";
}

} // namespace

PYBIND11_MODULE(_dopa, m) {
  m.doc() = "The compiled part of the dopa package (import dopa, not dopa._dopa).";

  py::register_exception<dopa::jit::SpecError>(m, "SpecError", PyExc_ValueError);
  py::register_exception<dopa::jit::BuildError>(m, "BuildError", PyExc_RuntimeError);

  py::class_<PyNetwork>(m, "Network", R"doc(A compiled network (made by dopa.compile()).

Its parameters and gradients live in two flat buffers of its dtype; `params`, `grads`,
`flat_params` and `flat_grads` are NumPy views of them (writable, no copies). forward() runs an
episode over [T, B, *shape] inputs and records it; backward() differentiates the recorded steps
and adds the parameter gradients into `grads`.)doc")
      .def_property_readonly(
          "name", [](PyNetwork &n) { return n.info().name; }, "The network's name in the spec.")
      .def_property_readonly(
          "spec_path",
          [](PyNetwork &n) {
            const char *path = n.specPath();
            return std::string(path ? path : "");
          },
          "The spec file it was compiled from.")
      .def_property_readonly(
          "dtype", [](PyNetwork &n) { return n.dtype(); }, "numpy.float32 or numpy.float64.")
      .def_property_readonly(
          "num_params", [](PyNetwork &n) { return n.info().numParams; },
          "The number of parameter values (the flat buffer's length).")
      .def_property_readonly(
          "param_names", [](PyNetwork &n) { return namesOf(n.info().params); },
          "The parameters' names in buffer order ('w', 'i2h.weight', ...).")
      .def_property_readonly(
          "input_names", [](PyNetwork &n) { return namesOf(n.info().inputs); },
          "The inputs' names, in the order forward() takes them.")
      .def_property_readonly(
          "output_names", [](PyNetwork &n) { return namesOf(n.info().outputs); },
          "The outputs' names, in the order forward() returns them.")
      .def_property_readonly(
          "state_names", [](PyNetwork &n) { return namesOf(n.info().states); },
          "The per-episode states' names.")
      .def_property_readonly(
          "index_inputs",
          [](PyNetwork &n) {
            py::list out;
            for (const TensorInfo &t : n.info().inputs)
              if (t.isInt)
                out.append(t.name);
            return out;
          },
          "The inputs declared `int` (indices, e.g. word ids): float arrays of exact integers or "
          "integer arrays.")
      .def_property_readonly(
          "mask_rates",
          [](PyNetwork &n) {
            py::dict out;
            for (const auto *tensors : {&n.info().params, &n.info().inputs})
              for (const TensorInfo &t : *tensors)
                if (t.isMask())
                  out[py::str(t.name)] = t.dropout;
            return out;
          },
          "{name: rate} of the spec's dropout masks (`mask m : [H] ~ dropout(p)`): a shared one "
          "is among the parameters (starts at 1, no gradient), one per element among the inputs.")
      .def_property_readonly(
          "param_shapes", [](PyNetwork &n) { return shapesOf(n.info().params); },
          "{name: shape} of the parameters.")
      .def_property_readonly(
          "input_shapes", [](PyNetwork &n) { return shapesOf(n.info().inputs); },
          "{name: shape per batch element} of the inputs (() for a scalar or an index).")
      .def_property_readonly(
          "output_shapes", [](PyNetwork &n) { return shapesOf(n.info().outputs); },
          "{name: shape per batch element} of the outputs.")
      .def_property_readonly(
          "state_shapes", [](PyNetwork &n) { return shapesOf(n.info().states); },
          "{name: shape per batch element} of the states.")
      .def_property_readonly(
          "params", [](py::object self) { return self.cast<PyNetwork &>().views(self, false); },
          "{name: ndarray}: writable views of the parameter buffer, shaped as the parameters "
          "(a new dict of views at each access; the views keep the network alive).")
      .def_property_readonly(
          "grads", [](py::object self) { return self.cast<PyNetwork &>().views(self, true); },
          "{name: ndarray}: writable views of the gradient buffer.")
      .def_property_readonly(
          "flat_params", [](py::object self) { return self.cast<PyNetwork &>().flat(self, false); },
          "The whole parameter buffer as a 1-D view (parameters in param_names order).")
      .def_property_readonly(
          "flat_grads", [](py::object self) { return self.cast<PyNetwork &>().flat(self, true); },
          "The whole gradient buffer as a 1-D view.")
      .def_property_readonly(
          "batch", [](PyNetwork &n) { return n.batch(); },
          "The current episode's batch size (0 before the first forward() or set_state()).")
      .def_property_readonly(
          "recorded_steps", [](PyNetwork &n) { return n.recordedSteps(); },
          "The steps recorded for backward() (0 after a backward()).")
      .def_property_readonly(
          "record_id", [](PyNetwork &n) { return n.recordId(); },
          "Changes with every forward(), backward() and set_state(): which record of steps "
          "backward() would differentiate.")
      .def_property_readonly(
          "cache_key", [](PyNetwork &n) { return n.compiled.key; },
          "The cache entry's key (SHA-256 of everything the compiled library depends on).")
      .def_property_readonly(
          "cache_entry", [](PyNetwork &n) { return n.compiled.entryDir; },
          "The cache entry's folder.")
      .def_property_readonly(
          "from_cache", [](PyNetwork &n) { return n.compiled.fromCache; },
          "True when compile() loaded the library from the cache without compiling.")
      .def_property_readonly(
          "compile_seconds", [](PyNetwork &n) { return n.compiled.seconds; },
          "The seconds compile() took (pipeline, C++ compiler unless cached, loading).")
      .def("zero_grad", &PyNetwork::zeroGrad, "Set every gradient to zero.")
      .def("init_params", &PyNetwork::initParams, py::arg("seed"),
           "Fill the parameters from the spec's initializers, deterministically from `seed` "
           "(the same values as `dopa train --seed`'s initialization).")
      .def(
          "forward",
          [](PyNetwork &n, const py::args &args, const py::kwargs &kwargs) {
            return n.forward(args, kwargs);
          },
          R"doc(forward(*inputs, reset=True) -> tuple of outputs

Run T steps. Inputs positionally in input_names order, as one dict, or as keywords; each an
ndarray [T, B, *shape] of the network's dtype (index inputs: also any integer dtype). Returns a
tuple with one new ndarray [T, B, *shape] per output. reset=True starts a new episode (states at
their initial values); reset=False continues from the current state (the batch must match), with
the steps recorded before dropped. The T steps are recorded for backward().)doc")
      .def(
          "backward",
          [](PyNetwork &n, const py::args &args, const py::kwargs &kwargs) {
            return n.backward(args, kwargs);
          },
          R"doc(backward(*output_grads) -> tuple of input gradients

Backpropagate through the steps of the last forward() and add (+=) the parameter gradients into
grads. One gradient per output, positionally (output_names order), as one dict or as keywords:
an ndarray [T, B, *shape] of the network's dtype with the forward's T and B, or None for zero.
Returns dLoss/d each input, a new ndarray [T, B, *shape] in input_names order (None for index
inputs). Consumes the record: a second backward() needs a new forward().)doc")
      .def("get_state", &PyNetwork::getState,
           "{name: ndarray [B, *shape]}: copies of the current states.")
      .def("set_state", &PyNetwork::setState, py::arg("states"),
           "Replace states ({name: ndarray [B, *shape]}; a subset is fine, an empty dict changes "
           "nothing). The recorded steps are dropped; a batch size other than the current one "
           "starts a new episode first. "
           "forward(..., reset=False) continues from the states set.")
      .def("__repr__", &reprOf);

  m.def("_compile", &compileSpec, py::arg("spec_path"), py::arg("dims"), py::arg("network"),
        py::arg("dtype"), py::arg("include_dirs"), py::arg("cache_dir"), py::arg("seed"),
        "Compile (or load from the cache) a network; dopa.compile() checks the arguments.");
  m.def("cache_dir", &dopa::jit::defaultCacheDir,
        "The default cache folder: $DOPA_CACHE_DIR, else $XDG_CACHE_HOME/dopa, else "
        "~/.cache/dopa.");
  m.def("_cache_list", &cacheList, py::arg("cache_dir"));
  m.def(
      "_cache_clear",
      [](const std::string &dir) {
        // It waits for each entry's lock, which a compile in another thread holds while it
        // reports progress through Python: without the GIL released, that would deadlock.
        py::gil_scoped_release release;
        return dopa::jit::clearCache(cacheDirOr(dir));
      },
      py::arg("cache_dir"));
}
