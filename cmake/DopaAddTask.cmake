# DopaAddTask.cmake - dopa_add_task(): build a researcher's own RL task as a plug-in of `dopa train`.
#
#   dopa_add_task(<target> SOURCES <file.cpp>... [OUTPUT_DIR <dir>])
#
# makes a shared module lib<target>.so from the sources, which define
#   extern "C" void dopa_register_tasks(dopa::TaskRegistry &registry);
# (dopa/train/Task.h). It compiles against the task interface alone (dopa::task_api: header-only),
# so the plug-in needs no symbol of the dopa that loads it: `dopa train <task> --task-library
# lib<target>.so`. examples/bandit/ is one.
include_guard(GLOBAL)

function(dopa_add_task target)
  cmake_parse_arguments(ARG "" "OUTPUT_DIR" "SOURCES" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "dopa_add_task(${target}): SOURCES is required")
  endif()
  add_library(${target} MODULE ${ARG_SOURCES})
  target_link_libraries(${target} PRIVATE dopa::task_api)
  target_compile_features(${target} PRIVATE cxx_std_20)
  set_target_properties(${target} PROPERTIES CXX_VISIBILITY_PRESET hidden)
  if(ARG_OUTPUT_DIR)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY ${ARG_OUTPUT_DIR})
  endif()
endfunction()
