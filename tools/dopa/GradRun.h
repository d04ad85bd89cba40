//===- GradRun.h - `dopa grad` on any executor ------------------------------===//
//
// One forward pass over T steps and one BPTT pass, from safetensors files to a safetensors file,
// written once for every executor with the runtime's executor interface (the generated
// GeneratedExecutor<T> and the generic Executor<T>, in float or double). Every file is validated:
// a missing, extra or mis-shaped tensor, or a NaN or infinity in one, is an error that names the
// file and the tensor.
//
//===----------------------------------------------------------------------===//
#pragma once

#include "Commands.h"
#include "Console.h"

#include "dopa/runtime/Network.h"
#include "dopa/runtime/SafeTensors.h"

#include <cmath>
#include <string>
#include <vector>

namespace dopa::tool::grad {

/// A file tensor of the executor's precision.
inline StoredTensor stored(std::string name, std::vector<int64_t> shape, const float *data) {
  return StoredTensor::fromFloat(std::move(name), std::move(shape), data);
}
inline StoredTensor stored(std::string name, std::vector<int64_t> shape, const double *data) {
  return StoredTensor::fromDouble(std::move(name), std::move(shape), data);
}

/// The index of element `flat` of a row-major tensor of `shape`, as "[3, 0, 5]".
inline std::string indexText(const std::vector<int64_t> &shape, size_t flat) {
  std::vector<int64_t> index(shape.size());
  auto rest = int64_t(flat);
  for (size_t k = shape.size(); k-- > 0;) {
    if (shape[k] > 0) {
      index[k] = rest % shape[k];
      rest /= shape[k];
    }
  }
  std::string text = "[";
  for (size_t k = 0; k < index.size(); ++k)
    text += (k ? ", " : "") + std::to_string(index[k]);
  return text + "]";
}

/// The values of `t` (read from `path`) as T. A NaN or an infinity, or a value beyond T's range, is
/// a DataError naming the file, the tensor and the first such element: "x.st: tensor 'x' holds nan
/// at [3, 0, 5]".
template <class T> std::vector<T> finiteValues(const StoredTensor &t, const std::string &path) {
  std::vector<double> d = t.toDouble();
  std::vector<T> values(d.begin(), d.end());
  for (size_t i = 0; i < d.size(); ++i) {
    if (std::isfinite(values[i]))
      continue;
    std::string what = format("%g", d[i]);
    if (std::isfinite(d[i]))
      what += ", beyond float32 (use --f64)";
    std::string msg = path;
    msg += ": tensor '" + t.name + "' holds ";
    msg += what;
    msg += " at ";
    msg += indexText(t.shape, i);
    throw DataError(msg);
  }
  return values;
}

/// Parameters from --init-seed or --params into `params`; written to --save-params if asked.
template <class T>
void loadParams(const GradOptions &opt, const NetworkInfo &info, std::vector<T> &params) {
  if (opt.initSeed) {
    std::vector<float> initial(info.numParams);
    initParams(info, initial.data(), *opt.initSeed);
    std::copy(initial.begin(), initial.end(), params.begin());
  } else {
    TensorFile file = readSafeTensors(opt.paramsPath);
    checkTensorSet(file, opt.paramsPath, info.params, {}, false, "param");
    for (size_t p = 0; p < info.params.size(); ++p) {
      std::vector<T> v = finiteValues<T>(*file.find(info.params[p].name), opt.paramsPath);
      std::copy(v.begin(), v.end(), params.begin() + long(info.paramOffsets[p]));
    }
  }
  if (opt.saveParamsPath.empty())
    return;
  TensorFile out;
  for (size_t p = 0; p < info.params.size(); ++p)
    out.tensors.push_back(
        stored(info.params[p].name, info.params[p].shape, params.data() + info.paramOffsets[p]));
  writeSafeTensors(opt.saveParamsPath, out);
}

/// The per-step inputs and output gradients, [T, B, ...] each with one T and one B for all.
template <class T> struct StepData {
  int64_t steps = 0, batch = 0;
  std::vector<std::vector<T>> inputs, outputGrads, outputs;
};

template <class T> StepData<T> readStepData(const GradOptions &opt, const NetworkInfo &info) {
  StepData<T> d;
  TensorFile inputs = readSafeTensors(opt.inputsPath);
  if (info.inputs.empty())
    throw DataError(opt.inputsPath + ": the network has no inputs, so the steps cannot be counted");
  const StoredTensor *first = inputs.find(info.inputs[0].name);
  if (!first || first->shape.size() < 2)
    throw DataError(opt.inputsPath + ": tensor '" + info.inputs[0].name +
                    "' must exist with shape [T, B, ...]");
  d.steps = first->shape[0];
  d.batch = first->shape[1];
  if (d.steps < 1 || d.batch < 1)
    throw DataError(opt.inputsPath + ": tensor '" + info.inputs[0].name +
                    "' has no steps or no batch");
  checkTensorSet(inputs, opt.inputsPath, info.inputs, {d.steps, d.batch}, false, "input");
  TensorFile grads = readSafeTensors(opt.outputGradsPath);
  checkTensorSet(grads, opt.outputGradsPath, info.outputs, {d.steps, d.batch}, true, "output");
  for (const TensorInfo &in : info.inputs)
    d.inputs.push_back(finiteValues<T>(*inputs.find(in.name), opt.inputsPath));
  for (const TensorInfo &o : info.outputs) {
    const StoredTensor *g = grads.find(o.name);
    if (!g)
      printNote("dopa grad",
                opt.outputGradsPath + " has no gradient for output '" + o.name + "'; using zeros");
    d.outputGrads.push_back(g ? finiteValues<T>(*g, opt.outputGradsPath) : std::vector<T>());
    d.outputs.emplace_back(size_t(d.steps * d.batch * o.numel()));
  }
  return d;
}

/// Forward over the steps, then backward from the output gradients.
template <class Exec, class T>
void forwardBackward(Exec &exec, const NetworkInfo &info, StepData<T> &d) {
  const int64_t B = d.batch;
  exec.beginEpisode(int(B));
  std::vector<const T *> inPtr(info.inputs.size());
  std::vector<T *> outPtr(info.outputs.size());
  for (int64_t t = 0; t < d.steps; ++t) {
    for (size_t k = 0; k < info.inputs.size(); ++k)
      inPtr[k] = d.inputs[k].data() + t * B * info.inputs[k].numel();
    for (size_t k = 0; k < info.outputs.size(); ++k)
      outPtr[k] = d.outputs[k].data() + t * B * info.outputs[k].numel();
    exec.step(inPtr.data(), outPtr.data());
  }
  std::vector<std::vector<const T *>> gradSteps(size_t(d.steps),
                                                std::vector<const T *>(info.outputs.size()));
  std::vector<const T *const *> gradPtr(size_t(d.steps));
  for (int64_t t = 0; t < d.steps; ++t) {
    for (size_t k = 0; k < info.outputs.size(); ++k)
      gradSteps[size_t(t)][k] = d.outputGrads[k].empty()
                                    ? nullptr
                                    : d.outputGrads[k].data() + t * B * info.outputs[k].numel();
    gradPtr[size_t(t)] = gradSteps[size_t(t)].data();
  }
  exec.backward(gradPtr.data(), nullptr);
}

/// `dopa grad` on `exec` (an executor of T): read, run, write the gradients and the outputs.
template <class Exec> int runWith(const GradOptions &opt, Exec &exec) {
  using T = typename std::decay_t<decltype(exec.params())>::value_type;
  const NetworkInfo &info = exec.info();
  loadParams<T>(opt, info, exec.params());
  StepData<T> d = readStepData<T>(opt, info);
  forwardBackward(exec, info, d);

  TensorFile out;
  out.metadata = {{"network", info.name},
                  {"steps", std::to_string(d.steps)},
                  {"batch", std::to_string(d.batch)},
                  {"precision", sizeof(T) == 4 ? "f32" : "f64"}};
  for (size_t p = 0; p < info.params.size(); ++p)
    out.tensors.push_back(stored(info.params[p].name, info.params[p].shape,
                                 exec.grads().data() + info.paramOffsets[p]));
  for (size_t k = 0; k < info.outputs.size(); ++k) {
    std::vector<int64_t> shape = {d.steps, d.batch};
    shape.insert(shape.end(), info.outputs[k].shape.begin(), info.outputs[k].shape.end());
    out.tensors.push_back(stored("output." + info.outputs[k].name, shape, d.outputs[k].data()));
  }
  writeSafeTensors(opt.outPath, out);
  printStderr("dopa grad: " + info.name + ": " + std::to_string(d.steps) + " steps, batch " +
              std::to_string(d.batch) + ", " + std::to_string(info.params.size()) +
              " parameter gradients written to " + opt.outPath + "\n");
  return 0;
}

} // namespace dopa::tool::grad
