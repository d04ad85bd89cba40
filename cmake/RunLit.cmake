# RunLit.cmake - a minimal lit: run every "# RUN:" line of TEST through sh with the substitutions
#   %dopac -> the dopac binary, %dopa -> the dopa tool, %FileCheck -> FileCheck, %s -> the test file,
#   %root -> the source tree, %t -> a scratch directory for this test (in the build tree),
#   %bandit -> the example task plug-in (examples/bandit).
# A RUN line may use pipes; the test fails when any RUN line exits non-zero (use `not` for failures).
#
# The file is split into lines by hand: a CMake list treats ';' as a separator and an unbalanced
# '[' as the start of a group that swallows the separators after it, so `file(STRINGS)` once
# merged every line after a RUN line with a lone '[' into that line, where bash read them as a
# comment: they were skipped without a word. A backslash at the end of a line would join it to
# the next the same way (CMake reads `\;` as an escaped separator). These four characters are
# swapped for control characters while the text is a list and swapped back in each command.
file(READ ${TEST} content)
string(ASCII 1 semicolon)
string(ASCII 2 open)
string(ASCII 3 close)
string(ASCII 4 backslash)
string(REPLACE "\\" "${backslash}" content "${content}")
string(REPLACE ";" "${semicolon}" content "${content}")
string(REPLACE "[" "${open}" content "${content}")
string(REPLACE "]" "${close}" content "${content}")
string(REPLACE "\n" ";" all "${content}")
set(lines)
foreach(raw IN LISTS all)
  if(raw MATCHES "^# RUN: ")
    list(APPEND lines "${raw}")
  endif()
endforeach()
if(NOT lines)
  message(FATAL_ERROR "${TEST} has no RUN line")
endif()
get_filename_component(FILECHECK_DIR ${FILECHECK} DIRECTORY)
foreach(line IN LISTS lines)
  string(REGEX REPLACE "^# RUN: " "" cmd "${line}")
  string(REPLACE "${backslash}" "\\" cmd "${cmd}")
  string(REPLACE "${semicolon}" ";" cmd "${cmd}")
  string(REPLACE "${open}" "[" cmd "${cmd}")
  string(REPLACE "${close}" "]" cmd "${cmd}")
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
