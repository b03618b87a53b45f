# Where CLI11, nlohmann/json, spdlog (+fmt) and GoogleTest come from. By default: the system's
# packages (Debian: scripts/setup.sh). With -DEXTRAP_THIRD_PARTY_DIR=DIR: header copies in DIR/include
# and GoogleTest's sources in DIR/googletest, as scripts/gpu_check.sh --prepare lays them out, for a
# machine that has a PyTorch install and CMake but none of those packages. spdlog and fmt are then
# used header-only.
set(EXTRAP_THIRD_PARTY_DIR "" CACHE PATH "header copies of CLI11, nlohmann/json, spdlog and fmt, and GoogleTest's sources")

if(NOT EXTRAP_THIRD_PARTY_DIR)
  find_package(CLI11 REQUIRED)
  find_package(nlohmann_json REQUIRED)
  find_package(spdlog REQUIRED)
  return()
endif()

set(_include ${EXTRAP_THIRD_PARTY_DIR}/include)
foreach(_header CLI/CLI.hpp nlohmann/json.hpp spdlog/spdlog.h fmt/format.h)
  if(NOT EXISTS ${_include}/${_header})
    message(FATAL_ERROR "EXTRAP_THIRD_PARTY_DIR=${EXTRAP_THIRD_PARTY_DIR}: ${_include}/${_header} is missing "
                        "(prepare the folder with scripts/gpu_check.sh --prepare)")
  endif()
endforeach()
add_library(extrap_headers INTERFACE)
target_include_directories(extrap_headers SYSTEM INTERFACE ${_include})
target_compile_definitions(extrap_headers INTERFACE SPDLOG_HEADER_ONLY SPDLOG_FMT_EXTERNAL FMT_HEADER_ONLY)
foreach(_target CLI11::CLI11 nlohmann_json::nlohmann_json spdlog::spdlog)
  add_library(${_target} ALIAS extrap_headers)
endforeach()
set(EXTRAP_GOOGLETEST_SOURCE ${EXTRAP_THIRD_PARTY_DIR}/googletest)
