# DopaHeaders.cmake - the header-only dependencies (Eigen 3.4, nlohmann-json 3, CLI11, doctest) as imported
# targets: from their Debian packages' CMake configs, or, where a machine has no such packages (the
# GPU machine), from copies under DOPA_HEADERS_DIR (eigen3/Eigen, nlohmann/json.hpp, CLI/CLI.hpp,
# doctest/doctest.h;
# scripts/gpu-check.sh carries them there).
find_package(Eigen3 3.4 QUIET NO_MODULE)
find_package(nlohmann_json 3 QUIET)
find_package(doctest QUIET)
find_package(CLI11 CONFIG QUIET)
function(dopa_header_target target probe subdir)
  if(TARGET ${target})
    return()
  endif()
  if(DOPA_HEADERS_DIR AND EXISTS "${DOPA_HEADERS_DIR}/${subdir}/${probe}")
    add_library(${target} INTERFACE IMPORTED GLOBAL)
    set_target_properties(${target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES
                                               "${DOPA_HEADERS_DIR}/${subdir}")
    message(STATUS "${target}: headers from ${DOPA_HEADERS_DIR}/${subdir}")
  else()
    message(FATAL_ERROR "${target} not found: install its package (scripts/install-deps.sh) or set "
                        "DOPA_HEADERS_DIR to a folder holding ${subdir}/${probe}")
  endif()
endfunction()
dopa_header_target(Eigen3::Eigen Eigen/Core eigen3)
dopa_header_target(nlohmann_json::nlohmann_json nlohmann/json.hpp .)
dopa_header_target(CLI11::CLI11 CLI/CLI.hpp .)
if(DOPA_BUILD_TESTS)
  dopa_header_target(doctest::doctest doctest/doctest.h .)
endif()
