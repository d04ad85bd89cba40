# RunLit.cmake - a minimal lit: run every "# RUN:" line of TEST through sh with the substitutions
#   %dopac -> the dopac binary, %dopa -> the dopa tool, %FileCheck -> FileCheck, %s -> the test file,
#   %root -> the source tree, %t -> a scratch directory for this test (in the build tree),
#   %bandit -> the example task plug-in (examples/bandit).
# A RUN line may use pipes; the test fails when any RUN line exits non-zero (use `not` for failures).
file(STRINGS ${TEST} lines REGEX "^# RUN: ")
if(NOT lines)
  message(FATAL_ERROR "${TEST} has no RUN line")
endif()
get_filename_component(FILECHECK_DIR ${FILECHECK} DIRECTORY)
foreach(line IN LISTS lines)
  string(REGEX REPLACE "^# RUN: " "" cmd "${line}")
  string(REPLACE "%bandit" "${BANDIT}" cmd "${cmd}")
  string(REPLACE "%dopac" "${DOPAC}" cmd "${cmd}")
  string(REPLACE "%dopa" "${DOPA}" cmd "${cmd}")
  string(REPLACE "%t" "${SCRATCH}" cmd "${cmd}")
  string(REPLACE "%FileCheck" "${FILECHECK}" cmd "${cmd}")
  string(REPLACE "%s" "${TEST}" cmd "${cmd}")
  string(REPLACE "%root" "${ROOT}" cmd "${cmd}")
  message(STATUS "RUN: ${cmd}")
  execute_process(COMMAND bash -c "set -o pipefail; PATH=${FILECHECK_DIR}:$PATH; ${cmd}"
                  RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "RUN line failed (${rc}): ${cmd}")
  endif()
endforeach()
