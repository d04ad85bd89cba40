# DopaLLVM.cmake - find LLVM 19 through its CMake config and expose it as the imported target dopa::llvm_support.
#
# Debian's LLVMConfig.cmake references an imported zstd::libzstd_shared target that nothing defines unless
# libzstd-dev's config is found first, so we define it here when it is missing. LLVM's definitions come
# through a target, not add_definitions().
#
# Which LLVM library an executable gets is its own choice: by default the static LLVMSupport component
# (small: `dopa` and the tests load only what they use), and the shared libLLVM for executables that
# set the property DOPA_LLVM_DYLIB (dopac, whose libFormat comes from Debian's clang libraries, which
# link libLLVM; one process must not have both, or LLVM's options would register twice). The choice is
# a generator expression on the consuming target in dopa::llvm_support's link interface.
# dopa::clang_format is Clang's libFormat, used to format generated code.
find_package(zstd CONFIG QUIET)
if(NOT TARGET zstd::libzstd_shared)
  find_library(DOPA_ZSTD_LIBRARY NAMES zstd REQUIRED)
  add_library(zstd::libzstd_shared SHARED IMPORTED)
  set_target_properties(zstd::libzstd_shared PROPERTIES IMPORTED_LOCATION "${DOPA_ZSTD_LIBRARY}")
endif()

find_package(LLVM CONFIG REQUIRED HINTS /usr/lib/llvm-19/lib/cmake/llvm)
if(NOT LLVM_VERSION_MAJOR EQUAL 19)
  message(FATAL_ERROR "dopa needs LLVM 19, found ${LLVM_PACKAGE_VERSION} at ${LLVM_DIR}")
endif()
message(STATUS "Using LLVMConfig.cmake in: ${LLVM_DIR} (LLVM ${LLVM_PACKAGE_VERSION})")

separate_arguments(DOPA_LLVM_DEFINITIONS NATIVE_COMMAND "${LLVM_DEFINITIONS}")
list(TRANSFORM DOPA_LLVM_DEFINITIONS REPLACE "^-D" "")

add_library(dopa_llvm_support INTERFACE)
add_library(dopa::llvm_support ALIAS dopa_llvm_support)
target_include_directories(dopa_llvm_support SYSTEM INTERFACE ${LLVM_INCLUDE_DIRS})
target_compile_definitions(dopa_llvm_support INTERFACE ${DOPA_LLVM_DEFINITIONS})
llvm_map_components_to_libnames(DOPA_LLVM_LIBS support)
target_link_libraries(dopa_llvm_support INTERFACE
  "$<IF:$<BOOL:$<TARGET_PROPERTY:DOPA_LLVM_DYLIB>>,LLVM,${DOPA_LLVM_LIBS}>")

find_package(Clang CONFIG REQUIRED HINTS /usr/lib/llvm-19/lib/cmake/clang)
add_library(dopa_clang_format INTERFACE)
add_library(dopa::clang_format ALIAS dopa_clang_format)
target_include_directories(dopa_clang_format SYSTEM INTERFACE ${CLANG_INCLUDE_DIRS})
target_link_libraries(dopa_clang_format INTERFACE clangFormat)

# Tools used by the tests.
find_program(DOPA_FILECHECK FileCheck HINTS ${LLVM_TOOLS_BINARY_DIR} /usr/lib/llvm-19/bin)
