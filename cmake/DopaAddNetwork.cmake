# DopaAddNetwork.cmake - dopa_add_network(): compile a *.dopa spec to a C++ library at build time.
#
#   dopa_add_network(<target> SPEC <file.dopa>
#                    [NETWORK <name>]            # one network of the spec (default: all)
#                    [NAMESPACE <id>]            # dopa::generated::<id> (default: snake_case name)
#                    [DIMS H=4 ...]              # dimension overrides (dopac -D)
#                    [INCLUDE_DIRS <dir>...]     # the spec's include path (dopac -I)
#                    [DEPENDS <file>...]         # included specs, so edits rebuild
#                    [CHECKPOINT_EVERY <k>] [MEMORY_BUDGET <bytes>]
#                    [OUTPUT_DIR <dir>]
#                    [BACKENDS cpu [cuda]]        # cuda: also the CUDA kernels (.cu)
#                    [INPUT_GRADIENTS]            # the backward also gives dLoss/d inputs (cpu only)
#                    [BATCHED_READOUTS auto|all|none] # dopac --batched-readouts (cpu; default auto)
#                    [TRACE_PRECISION float|bf16] # dopac --trace-precision (cpu; default float)
#                    [PREGENERATED <dir>])        # use <dir>/<target>.{cpp,h,cu}, do not run dopac
#
# runs dopac (--emit=cpp, --emit=header, and --emit=cuda for the cuda backend) as a custom command
# that reruns when the spec or the compiler changes, and makes a static library <target> exposing
# <target>.h, linked to dopa::runtime (and dopa::cuda_runtime). The generated C++ is compiled with
# -O3 and DOPA_ARCH_FLAGS (default -march=native: the hot loops are meant to vectorize for the
# machine that runs them). PREGENERATED builds committed sources on a machine without the compiler.
include_guard(GLOBAL)

set(DOPA_ARCH_FLAGS "-march=native" CACHE STRING
    "Architecture flags for generated networks and every C++ object of the build (the runtime's GEMMs)")
option(DOPA_GENERATED_WERROR "Compile generated networks with -Werror (CI)" OFF)

function(dopa_add_network target)
  cmake_parse_arguments(ARG "INPUT_GRADIENTS" "SPEC;NETWORK;NAMESPACE;CHECKPOINT_EVERY;MEMORY_BUDGET;OUTPUT_DIR;PREGENERATED;BATCHED_READOUTS;TRACE_PRECISION"
                        "DIMS;INCLUDE_DIRS;DEPENDS;BACKENDS" ${ARGN})
  set(withCuda OFF)
  if("cuda" IN_LIST ARG_BACKENDS)
    set(withCuda ON)
  endif()
  if(NOT ARG_SPEC)
    message(FATAL_ERROR "dopa_add_network(${target}): SPEC is required")
  endif()
  get_filename_component(spec "${ARG_SPEC}" ABSOLUTE)
  if(NOT ARG_OUTPUT_DIR)
    set(ARG_OUTPUT_DIR "${CMAKE_CURRENT_BINARY_DIR}/dopa_generated/${target}")
  endif()
  # The spec's name in the generated code: relative to the project, so output is deterministic.
  file(RELATIVE_PATH specName "${PROJECT_SOURCE_DIR}" "${spec}")
  if(specName MATCHES "^\\.\\.")
    get_filename_component(specName "${spec}" NAME)
  endif()
  set(args "--spec-name=${specName}")
  if(ARG_NETWORK)
    list(APPEND args "--network=${ARG_NETWORK}")
  endif()
  if(ARG_NAMESPACE)
    list(APPEND args "--namespace=${ARG_NAMESPACE}")
  endif()
  foreach(d IN LISTS ARG_DIMS)
    list(APPEND args "-D" "${d}")
  endforeach()
  foreach(d IN LISTS ARG_INCLUDE_DIRS)
    get_filename_component(d "${d}" ABSOLUTE)
    list(APPEND args "-I" "${d}")
  endforeach()
  if(ARG_CHECKPOINT_EVERY)
    list(APPEND args "--checkpoint-every=${ARG_CHECKPOINT_EVERY}")
  endif()
  if(ARG_MEMORY_BUDGET)
    list(APPEND args "--memory-budget=${ARG_MEMORY_BUDGET}")
  endif()
  if(ARG_INPUT_GRADIENTS)
    if(withCuda)
      message(FATAL_ERROR "dopa_add_network(${target}): INPUT_GRADIENTS is for the cpu backend only")
    endif()
    list(APPEND args "--input-gradients")
  endif()
  if(ARG_BATCHED_READOUTS)
    if(NOT ARG_BATCHED_READOUTS MATCHES "^(auto|all|none)$")
      message(FATAL_ERROR "dopa_add_network(${target}): BATCHED_READOUTS is auto, all or none, not '${ARG_BATCHED_READOUTS}'")
    endif()
    list(APPEND args "--batched-readouts=${ARG_BATCHED_READOUTS}")
  endif()
  if(ARG_TRACE_PRECISION)
    if(NOT ARG_TRACE_PRECISION MATCHES "^(float|bf16)$")
      message(FATAL_ERROR "dopa_add_network(${target}): TRACE_PRECISION is float or bf16, not '${ARG_TRACE_PRECISION}'")
    endif()
    if(withCuda AND ARG_TRACE_PRECISION STREQUAL "bf16")
      message(FATAL_ERROR "dopa_add_network(${target}): TRACE_PRECISION bf16 is for the cpu backend only")
    endif()
    list(APPEND args "--trace-precision=${ARG_TRACE_PRECISION}")
  endif()
  if(ARG_PREGENERATED)
    set(ARG_OUTPUT_DIR "${ARG_PREGENERATED}")
  endif()
  set(cpp "${ARG_OUTPUT_DIR}/${target}.cpp")
  set(hdr "${ARG_OUTPUT_DIR}/${target}.h")
  set(cu "${ARG_OUTPUT_DIR}/${target}.cu")
  set(sources "${cpp}" "${hdr}")
  if(withCuda)
    list(APPEND sources "${cu}")
  endif()
  if(NOT ARG_PREGENERATED)
    if(TARGET dopac)
      set(dopac "$<TARGET_FILE:dopac>")
      set(dopacDep dopac)
    else()
      set(dopac "$<TARGET_FILE:dopa::dopac>")
      set(dopacDep dopa::dopac)
    endif()
    set(cudaCommand "")
    if(withCuda)
      set(cudaCommand COMMAND ${dopac} --emit=cuda ${args} -o "${cu}" "${spec}")
    endif()
    add_custom_command(
      OUTPUT ${sources}
      COMMAND ${CMAKE_COMMAND} -E make_directory "${ARG_OUTPUT_DIR}"
      COMMAND ${dopac} --emit=cpp ${args} -o "${cpp}" "${spec}"
      COMMAND ${dopac} --emit=header ${args} -o "${hdr}" "${spec}"
      ${cudaCommand}
      DEPENDS "${spec}" ${ARG_DEPENDS} ${dopacDep}
      COMMENT "dopac: generating ${target} from ${specName}"
      VERBATIM)
  endif()
  add_library(${target} STATIC ${sources})
  target_include_directories(${target} PUBLIC "${ARG_OUTPUT_DIR}")
  if(withCuda)
    if(TARGET dopa_cuda_runtime)
      target_link_libraries(${target} PUBLIC dopa_cuda_runtime)
    else()
      target_link_libraries(${target} PUBLIC dopa::cuda_runtime)
    endif()
    set_source_files_properties("${cu}" PROPERTIES COMPILE_OPTIONS "-O3")
  endif()
  if(TARGET dopa_runtime)
    target_link_libraries(${target} PUBLIC dopa_runtime)
  else()
    target_link_libraries(${target} PUBLIC dopa::runtime)
  endif()
  separate_arguments(archFlags NATIVE_COMMAND "${DOPA_ARCH_FLAGS}")
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-O3 -Wall -Wextra ${archFlags}>)
  if(DOPA_GENERATED_WERROR)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:-Werror>
                                             $<$<COMPILE_LANGUAGE:CUDA>:-Werror=all-warnings>)
  endif()
  # GCC 12's AVX-512 intrinsics headers trip -Wmaybe-uninitialized inside Eigen's products (GCC
  # bug 105593, fixed in GCC 13); the generated code itself is clean under -Wall -Wextra.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
    target_compile_options(${target} PRIVATE
                           $<$<COMPILE_LANGUAGE:CXX>:-Wno-maybe-uninitialized -Wno-uninitialized>)
  endif()
  target_compile_definitions(${target} PRIVATE EIGEN_DONT_PARALLELIZE)
  set_target_properties(${target} PROPERTIES DOPA_GENERATED_CPP "${cpp}" DOPA_GENERATED_HEADER
                                                                         "${hdr}")
endfunction()
