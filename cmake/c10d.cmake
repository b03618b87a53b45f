# Data-parallel training uses LibTorch's own c10d backends (src/parallel/process_group.cpp). Their
# headers include Gloo's (Debian: libgloo-dev; some PyTorch installs ship them under torch/include)
# and, for NCCL, nccl.h. Writes generated/parallel/backends.h with EXTRAP_HAVE_GLOO and
# EXTRAP_HAVE_NCCL, and sets EXTRAP_C10D_INCLUDE_DIRS; without either, extrap still builds and runs one process.
find_path(EXTRAP_GLOO_INCLUDE_DIR gloo/context.h HINTS ${TORCH_INCLUDE_DIRS})
set(EXTRAP_HAVE_GLOO 0)
set(EXTRAP_C10D_INCLUDE_DIRS)
if(EXTRAP_GLOO_INCLUDE_DIR)
  set(EXTRAP_HAVE_GLOO 1)
  list(APPEND EXTRAP_C10D_INCLUDE_DIRS ${EXTRAP_GLOO_INCLUDE_DIR})
else()
  message(WARNING "Gloo's headers (libgloo-dev) not found: extrap is built without data-parallel training on the CPU")
endif()
set(EXTRAP_HAVE_NCCL 0)
if(TORCH_CUDA_LIBRARIES)
  find_path(EXTRAP_NCCL_INCLUDE_DIR nccl.h HINTS ${TORCH_INCLUDE_DIRS} ${CUDA_TOOLKIT_ROOT_DIR}/include)
  if(EXTRAP_NCCL_INCLUDE_DIR)
    set(EXTRAP_HAVE_NCCL 1)
    list(APPEND EXTRAP_C10D_INCLUDE_DIRS ${EXTRAP_NCCL_INCLUDE_DIR})
  endif()
endif()
file(CONFIGURE OUTPUT ${CMAKE_BINARY_DIR}/generated/parallel/backends.h CONTENT
"#pragma once
// Written by cmake/c10d.cmake: the c10d backends this build has.
#define EXTRAP_HAVE_GLOO ${EXTRAP_HAVE_GLOO}
#define EXTRAP_HAVE_NCCL ${EXTRAP_HAVE_NCCL}
#if EXTRAP_HAVE_GLOO
#define USE_C10D_GLOO 1
#endif
#if EXTRAP_HAVE_NCCL
#define USE_C10D_NCCL 1
#endif
")
