# Writes generated/common/version.h with the current git commit and the source directory (where
# `extrap plot` finds scripts/plot.py); rewritten only when it changes, so a new commit is recorded
# in results without forcing a full rebuild.
execute_process(COMMAND git rev-parse --short=12 HEAD WORKING_DIRECTORY ${SOURCE_DIR}
  OUTPUT_VARIABLE commit OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
execute_process(COMMAND git status --porcelain --untracked-files=no WORKING_DIRECTORY ${SOURCE_DIR}
  OUTPUT_VARIABLE dirty OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
if(NOT commit)
  set(commit unknown)
elseif(dirty)
  set(commit "${commit}-dirty")
endif()
set(content "#pragma once\nnamespace extrap {\ninline constexpr const char* kVersion = \"${VERSION}\";\ninline constexpr const char* kGitCommit = \"${commit}\";\ninline constexpr const char* kSourceDir = R\"extrap_path(${SOURCE_DIR})extrap_path\";\n}  // namespace extrap\n")
if(EXISTS ${OUTPUT})
  file(READ ${OUTPUT} old)
endif()
if(NOT "${old}" STREQUAL "${content}")
  file(WRITE ${OUTPUT} "${content}")
endif()
