#include "model/blas.h"

#ifdef EXTRAP_HAVE_CBLAS
#include <cblas.h>
#else
#include <torch/torch.h>
#endif

namespace extrap {

void gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
#ifdef EXTRAP_HAVE_CBLAS
  cblas_sgemm(CblasRowMajor, transpose_a ? CblasTrans : CblasNoTrans, transpose_b ? CblasTrans : CblasNoTrans,
              int(m), int(n), int(k), alpha, a, int(lda), b, int(ldb), beta, c, int(ldc));
#else
  // LibTorch's own matrix product on views of the raw buffers (its internal GEMM is not exported
  // by every build); inside at::parallel_for it runs on the calling thread.
  const auto matrix = [](const float* data, int64_t rows, int64_t cols, int64_t stride, bool transpose) {
    auto t = torch::from_blob(const_cast<float*>(data), {transpose ? cols : rows, transpose ? rows : cols}, {stride, 1});
    return transpose ? t.t() : t;
  };
  auto out = torch::from_blob(c, {m, n}, {ldc, 1});
  out.addmm_(matrix(a, m, k, lda, transpose_a), matrix(b, k, n, ldb, transpose_b), beta, alpha);
#endif
}

}  // namespace extrap
