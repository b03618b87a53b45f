#include "model/blas.h"

#ifdef EXTRAP_HAVE_CBLAS
#include <cblas.h>
#else
#include <ATen/native/CPUBlas.h>
#endif

namespace extrap {

void gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
#ifdef EXTRAP_HAVE_CBLAS
  cblas_sgemm(CblasRowMajor, transpose_a ? CblasTrans : CblasNoTrans, transpose_b ? CblasTrans : CblasNoTrans,
              int(m), int(n), int(k), alpha, a, int(lda), b, int(ldb), beta, c, int(ldc));
#else
  // LibTorch's GEMM is column-major: row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T.
  using at::native::TransposeType;
  at::native::cpublas::gemm(transpose_b ? TransposeType::Transpose : TransposeType::NoTranspose,
                            transpose_a ? TransposeType::Transpose : TransposeType::NoTranspose, n, m, k, alpha, b,
                            ldb, a, lda, beta, c, ldc);
#endif
}

}  // namespace extrap
