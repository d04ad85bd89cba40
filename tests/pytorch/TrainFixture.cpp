//===- TrainFixture.cpp - Runs dopa's A2C loss and Adam on data from a file -===//
//
// Test helper for compare_train.py: reads an episode's logits, values, actions and rewards, and a
// sequence of gradients, from a safetensors file; writes the A2C loss with its output gradients,
// and the parameters after Adam steps with gradient-norm clipping, for comparison with PyTorch.
//
//===----------------------------------------------------------------------===//
#include "dopa/runtime/SafeTensors.h"
#include "dopa/train/A2C.h"
#include "dopa/train/Optim.h"

#include <cstdio>
#include <string>

using namespace dopa;

int main(int argc, char **argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s IN.st OUT.st\n", argv[0]);
    return 2;
  }
  try {
    TensorFile in = readSafeTensors(argv[1]);
    auto get = [&](const char *name) -> const StoredTensor & {
      const StoredTensor *t = in.find(name);
      if (!t)
        throw DataError(std::string(argv[1]) + ": missing '" + name + "'");
      return *t;
    };
    auto meta = [&](const char *key) { return std::stod(in.metadata.at(key)); };
    const StoredTensor &logits = get("logits");
    int T = int(logits.shape[0]), B = int(logits.shape[1]), A = int(logits.shape[2]);
    std::vector<double> actionsD = get("actions").toDouble();
    std::vector<int> actions(actionsD.begin(), actionsD.end());
    A2CConfig cfg;
    cfg.gamma = float(meta("gamma"));
    cfg.entropyWeight = float(meta("bent"));
    cfg.valueWeight = float(meta("blossv"));
    cfg.baseline = meta("per_element") != 0 ? A2CConfig::Baseline::PerElement
                                            : A2CConfig::Baseline::FirstElement;
    A2CResult r = a2cLoss(cfg, T, B, A, logits.toFloat(), get("values").toFloat(), actions,
                          get("rewards").toFloat());

    std::vector<float> params = get("params").toFloat();
    const StoredTensor &grads = get("grads");
    int K = int(grads.shape[0]);
    size_t N = params.size();
    std::vector<float> allGrads = grads.toFloat();
    AdamConfig acfg;
    acfg.lr = meta("lr");
    acfg.eps = meta("eps");
    Adam adam(acfg, N);
    std::vector<double> norms;
    for (int k = 0; k < K; ++k) {
      std::vector<float> g(allGrads.begin() + long(k * N), allGrads.begin() + long((k + 1) * N));
      norms.push_back(clipGradNorm(g.data(), N, meta("max_norm")));
      adam.step(params.data(), g.data());
    }

    TensorFile out;
    out.tensors.push_back(StoredTensor::fromDouble("loss", {}, &r.loss));
    out.tensors.push_back(StoredTensor::fromFloat("dlogits", {T, B, A}, r.dLogits.data()));
    out.tensors.push_back(StoredTensor::fromFloat("dvalue", {T, B}, r.dValue.data()));
    out.tensors.push_back(StoredTensor::fromFloat("params", {int64_t(N)}, params.data()));
    out.tensors.push_back(StoredTensor::fromDouble("norms", {K}, norms.data()));
    writeSafeTensors(argv[2], out);
  } catch (const std::exception &e) {
    std::fprintf(stderr, "train fixture: %s\n", e.what());
    return 1;
  }
  return 0;
}
