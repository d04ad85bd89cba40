//===- Grad.cpp - `dopa grad`: one forward and one BPTT pass from files ----===//
//
// Reads parameters (or initializes them from a seed), per-step inputs and per-step output
// gradients from safetensors files, runs the generic executor forward over the T steps and back
// through time, and writes every parameter's gradient and the per-step outputs. This is what a user
// runs to check a spec against their own PyTorch code. Every file is validated: a missing, extra or
// mis-shaped tensor is an error that names the file and the tensor.
//
//===----------------------------------------------------------------------===//
#include "Commands.h"

#include "dopa/generic/Executor.h"
#include "dopa/runtime/SafeTensors.h"

#include "llvm/Support/WithColor.h"
#include "llvm/Support/raw_ostream.h"

using namespace dopa;
using namespace dopa::tool;

std::optional<CompiledNetwork> tool::loadNetwork(const SpecOptions &options) {
  sema::DimOverrides overrides;
  for (const std::string &item : options.dimOverrides) {
    auto [name, value] = llvm::StringRef(item).split('=');
    int64_t v = 0;
    if (name.empty() || value.getAsInteger(10, v)) {
      llvm::WithColor::error(llvm::errs(), "dopa")
          << "-D expects NAME=INTEGER, got '" << item << "'\n";
      return std::nullopt;
    }
    overrides[name] = v;
  }
  Frontend frontend(options.includeDirs);
  if (!frontend.parseFile(options.path))
    return std::nullopt;
  auto program = frontend.check(overrides.empty() ? nullptr : &overrides);
  if (!program)
    return std::nullopt;
  const sema::Network *net = nullptr;
  if (options.network.empty()) {
    if (program->networks.size() != 1) {
      frontend.getDiagnostics().errorNoLoc(options.path + " has " +
                                           llvm::Twine(program->networks.size()) +
                                           " networks; choose one with --network");
      return std::nullopt;
    }
    net = program->networks.front().get();
  } else {
    net = program->find(options.network);
  }
  if (!net) {
    frontend.getDiagnostics().errorNoLoc("no network named '" + options.network + "' in " +
                                         options.path);
    return std::nullopt;
  }
  return compileNetwork(*net, frontend.getDiagnostics(), /*verifyEach=*/true);
}

namespace {

/// A file tensor of the executor's precision.
StoredTensor stored(std::string name, std::vector<int64_t> shape, const float *data) {
  return StoredTensor::fromFloat(std::move(name), std::move(shape), data);
}
StoredTensor stored(std::string name, std::vector<int64_t> shape, const double *data) {
  return StoredTensor::fromDouble(std::move(name), std::move(shape), data);
}

template <class T> int gradImpl(const GradOptions &opt, const CompiledNetwork &net) {
  Executor<T> exec(net.forward, net.backward);
  const NetworkInfo &info = exec.info();

  // Parameters.
  std::vector<float> initial(info.numParams);
  if (opt.initSeed) {
    initParams(info, initial.data(), *opt.initSeed);
    std::copy(initial.begin(), initial.end(), exec.params().begin());
  } else {
    TensorFile params = readSafeTensors(opt.paramsPath);
    checkTensorSet(params, opt.paramsPath, info.params, {}, false, "param");
    for (size_t p = 0; p < info.params.size(); ++p) {
      std::vector<double> v = params.find(info.params[p].name)->toDouble();
      std::copy(v.begin(), v.end(), exec.params().begin() + long(info.paramOffsets[p]));
    }
  }
  if (!opt.saveParamsPath.empty()) {
    TensorFile out;
    for (size_t p = 0; p < info.params.size(); ++p) {
      out.tensors.push_back(stored(info.params[p].name, info.params[p].shape,
                                   exec.params().data() + info.paramOffsets[p]));
    }
    writeSafeTensors(opt.saveParamsPath, out);
  }

  // Inputs: [T, B, ...] each, with one T and one B for all.
  TensorFile inputs = readSafeTensors(opt.inputsPath);
  if (info.inputs.empty())
    throw DataError(opt.inputsPath + ": the network has no inputs, so the steps cannot be counted");
  const StoredTensor *first = inputs.find(info.inputs[0].name);
  if (!first || first->shape.size() < 2)
    throw DataError(opt.inputsPath + ": tensor '" + info.inputs[0].name +
                    "' must exist with shape [T, B, ...]");
  int64_t steps = first->shape[0], batch = first->shape[1];
  if (steps < 1 || batch < 1)
    throw DataError(opt.inputsPath + ": tensor '" + info.inputs[0].name +
                    "' has no steps or no batch");
  checkTensorSet(inputs, opt.inputsPath, info.inputs, {steps, batch}, false, "input");
  TensorFile outputGrads = readSafeTensors(opt.outputGradsPath);
  checkTensorSet(outputGrads, opt.outputGradsPath, info.outputs, {steps, batch}, true, "output");
  for (const TensorInfo &o : info.outputs)
    if (!outputGrads.find(o.name))
      llvm::errs() << "dopa grad: note: " << opt.outputGradsPath << " has no gradient for output '"
                   << o.name << "'; using zeros\n";

  auto asT = [](const StoredTensor &t) {
    std::vector<double> d = t.toDouble();
    return std::vector<T>(d.begin(), d.end());
  };
  std::vector<std::vector<T>> inData, gradData, outData;
  for (const TensorInfo &in : info.inputs)
    inData.push_back(asT(*inputs.find(in.name)));
  for (const TensorInfo &o : info.outputs) {
    const StoredTensor *g = outputGrads.find(o.name);
    gradData.push_back(g ? asT(*g) : std::vector<T>());
    outData.emplace_back(size_t(steps * batch * o.numel()));
  }

  exec.beginEpisode(int(batch));
  std::vector<const T *> inPtr(info.inputs.size());
  std::vector<T *> outPtr(info.outputs.size());
  for (int64_t t = 0; t < steps; ++t) {
    for (size_t k = 0; k < info.inputs.size(); ++k)
      inPtr[k] = inData[k].data() + t * batch * info.inputs[k].numel();
    for (size_t k = 0; k < info.outputs.size(); ++k)
      outPtr[k] = outData[k].data() + t * batch * info.outputs[k].numel();
    exec.step(inPtr.data(), outPtr.data());
  }
  std::vector<std::vector<const T *>> gradSteps(static_cast<size_t>(steps),
                                                std::vector<const T *>(info.outputs.size()));
  std::vector<const T *const *> gradPtr(static_cast<size_t>(steps));
  for (int64_t t = 0; t < steps; ++t) {
    for (size_t k = 0; k < info.outputs.size(); ++k)
      gradSteps[size_t(t)][k] =
          gradData[k].empty() ? nullptr : gradData[k].data() + t * batch * info.outputs[k].numel();
    gradPtr[size_t(t)] = gradSteps[size_t(t)].data();
  }
  exec.backward(gradPtr.data(), nullptr);

  TensorFile out;
  out.metadata = {{"network", info.name},
                  {"steps", std::to_string(steps)},
                  {"batch", std::to_string(batch)},
                  {"precision", sizeof(T) == 4 ? "f32" : "f64"}};
  for (size_t p = 0; p < info.params.size(); ++p)
    out.tensors.push_back(stored(info.params[p].name, info.params[p].shape,
                                 exec.grads().data() + info.paramOffsets[p]));
  for (size_t k = 0; k < info.outputs.size(); ++k) {
    std::vector<int64_t> shape = {steps, batch};
    shape.insert(shape.end(), info.outputs[k].shape.begin(), info.outputs[k].shape.end());
    out.tensors.push_back(stored("output." + info.outputs[k].name, shape, outData[k].data()));
  }
  writeSafeTensors(opt.outPath, out);
  llvm::errs() << "dopa grad: " << info.name << ": " << steps << " steps, batch " << batch << ", "
               << info.params.size() << " parameter gradients written to " << opt.outPath << "\n";
  return 0;
}

} // namespace

int tool::runGrad(const GradOptions &opt) {
  auto net = loadNetwork(opt.spec);
  if (!net)
    return 1;
  try {
    return opt.doublePrecision ? gradImpl<double>(opt, *net) : gradImpl<float>(opt, *net);
  } catch (const std::exception &e) {
    llvm::WithColor::error(llvm::errs(), "dopa grad") << e.what() << "\n";
    return 1;
  }
}
