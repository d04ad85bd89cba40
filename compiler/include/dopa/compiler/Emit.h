//===- Emit.h - Emitters: fused kernels to C++ and CUDA source ------------===//
//
// The C++ emitter prints a FusedNetwork as one translation unit: a forward and a backward step
// function per network (each a sequence of static stage functions, one per fused loop nest, named
// after the values it stores and headed by the spec lines it computes), the parameter and state
// offsets as named constants, the network's description and an accessor returning a
// dopa::GeneratedSpec, which the runtime's GeneratedNetwork runs with its checkpointing plan. The
// CUDA emitter prints the same stages as device functions, a kernel per step and a dopa::CudaSpec.
// Generated files include one runtime header each (dopa/runtime/GeneratedSupport.h,
// dopa/cuda/DeviceSupport.cuh) and hold only network code. Output is deterministic; dopac formats
// it (EmitOptions::formatter, Format.h). (Implementation: lib/EmitCommon.h, the shared core;
// lib/EmitCpp.cpp and lib/EmitCuda.cpp, the backends.)
//
//===----------------------------------------------------------------------===//
#pragma once

#include "dopa/compiler/Kernel.h"

#include "llvm/Support/SourceMgr.h"

#include <stdexcept>
#include <string>

namespace dopa {

struct EmitOptions {
  std::string specPath;   // as the #line directives and the banner name it
  std::string outputName; // the generated file's name (for #line directives back to it)
  bool lineDirectives = true;
  /// Applied to a whole file (dopac: formatCpp, Format.h); none: the code as emitted, one
  /// statement per line (the on-demand compiler's: it compiles to the same instructions).
  std::string (*formatter)(const std::string &) = nullptr;
  int checkpointEvery = 0;    // 0: the runtime's plan chooses
  long long memoryBudget = 0; // bytes; 0: the runtime's default
  std::string cppNamespace;   // overrides snakeCase(network name)
};

/// A construct of the network that the emitters do not generate (the generic executor runs it),
/// with the place in the spec it comes from (invalid when unknown).
struct EmitUnsupported : std::runtime_error {
  EmitUnsupported(const std::string &what, llvm::SMLoc loc) : std::runtime_error(what), loc(loc) {}
  llvm::SMLoc loc;
};

/// snake_case of a network name ("CueRewardModul" -> "cue_reward_modul").
std::string snakeCase(const std::string &name);

/// C++ for one network: `namespace dopa::generated::<snake>` with the step functions and
/// `const dopa::GeneratedSpec &spec()`.
std::string emitCppNetwork(const CompiledNetwork &net, const kern::FusedNetwork &fused,
                           const llvm::SourceMgr &sources, const EmitOptions &options);

/// CUDA for one network: device stages, a forward and a backward kernel (a block per batch
/// element) with host launchers, and `const dopa::CudaSpec &cuda_spec()`.
std::string emitCudaNetwork(const CompiledNetwork &net, const kern::FusedNetwork &fused,
                            const llvm::SourceMgr &sources, const EmitOptions &options);

/// The CUDA translation unit for several networks.
std::string emitCudaFile(const std::vector<std::string> &networkBodies, const EmitOptions &options);

/// The translation unit for several networks (banner, includes, each network).
std::string emitCppFile(const std::vector<std::string> &networkBodies, const EmitOptions &options);

/// The header declaring each network's accessor.
std::string emitCppHeader(const std::vector<std::string> &networkNames, const EmitOptions &options);

/// The namespace a network's code goes in (dopa::generated::<this>).
std::string cppNamespaceOf(const std::string &networkName, const EmitOptions &options);

} // namespace dopa
