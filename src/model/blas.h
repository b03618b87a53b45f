#pragma once
// Direct single-precision BLAS (CBLAS, or LibTorch's CPU GEMM where no CBLAS was found) for the CPU
// kernels. Called inside at::parallel_for, OpenBLAS's OpenMP build runs each call single-threaded, so
// independent matrix products can each own a core.
#include <cstdint>

namespace extrap {

// Row-major C[m,n] = alpha * op(A) op(B) + beta * C, op(X) = X or X^T; lda/ldb/ldc are row strides.
void gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

}  // namespace extrap
