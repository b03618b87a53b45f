# The CPU attention kernel calls cblas_sgemm (src/model/blas.cpp). OpenBLAS is preferred: on Debian it
# is what LibTorch's libblas.so.3 resolves to, so the process runs one BLAS with one thread pool.
# Another CBLAS can be chosen with -DBLA_VENDOR=... (CMake's FindBLAS vendors). Without any (a
# PyTorch install on a machine without BLAS headers), the kernel calls LibTorch's own CPU GEMM.
# Sets EXTRAP_HAVE_CBLAS, EXTRAP_CBLAS_LIBRARIES and EXTRAP_CBLAS_INCLUDE_DIR.
include(CheckCXXSymbolExists)

if(NOT BLA_VENDOR)
  set(BLA_VENDOR OpenBLAS)
  find_package(BLAS QUIET)
  unset(BLA_VENDOR)
endif()
if(NOT BLAS_FOUND)
  find_package(BLAS)
endif()

find_path(EXTRAP_CBLAS_INCLUDE_DIR cblas.h PATH_SUFFIXES openblas)
if(BLAS_FOUND AND EXTRAP_CBLAS_INCLUDE_DIR)
  set(CMAKE_REQUIRED_INCLUDES ${EXTRAP_CBLAS_INCLUDE_DIR})
  set(CMAKE_REQUIRED_LIBRARIES ${BLAS_LIBRARIES})
  set(CMAKE_REQUIRED_QUIET ON)
  check_cxx_symbol_exists(cblas_sgemm cblas.h EXTRAP_HAVE_CBLAS_SGEMM)
  unset(CMAKE_REQUIRED_INCLUDES)
  unset(CMAKE_REQUIRED_LIBRARIES)
  unset(CMAKE_REQUIRED_QUIET)
endif()
if(NOT BLAS_FOUND)
  set(_cblas_problem "CMake's FindBLAS found no BLAS library")
elseif(NOT EXTRAP_CBLAS_INCLUDE_DIR)
  set(_cblas_problem "no cblas.h was found")
elseif(NOT EXTRAP_HAVE_CBLAS_SGEMM)
  set(_cblas_problem "cblas_sgemm is not in ${BLAS_LIBRARIES}")
endif()
if(_cblas_problem)
  message(STATUS "CBLAS: none (${_cblas_problem}); the CPU attention kernel calls LibTorch's CPU GEMM. On Debian, "
                 "scripts/setup.sh installs OpenBLAS (libopenblas-openmp-dev), the faster choice.")
  set(EXTRAP_HAVE_CBLAS OFF)
  set(EXTRAP_CBLAS_LIBRARIES "")
  set(EXTRAP_CBLAS_INCLUDE_DIR "")
  return()
endif()
message(STATUS "CBLAS: ${BLAS_LIBRARIES} (header in ${EXTRAP_CBLAS_INCLUDE_DIR})")
set(EXTRAP_HAVE_CBLAS ON)
set(EXTRAP_CBLAS_LIBRARIES ${BLAS_LIBRARIES})
