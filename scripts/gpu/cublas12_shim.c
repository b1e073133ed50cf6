/* A libcublas.so.12 that forwards the eight cuBLAS calls FAISS's GPU code makes to
 * libcublas.so.13.
 *
 * Why: PyPI's faiss-gpu wheels (faiss-gpu-cu12 1.14.1) are built against CUDA 12,
 * while the GPU machines this project is lent ship only CUDA 13 libraries (driver
 * 580, PyTorch cu130) and accept no downloads beyond 64 MiB a call, which rules out
 * carrying nvidia-cublas-cu12 (hundreds of MB). The CUDA 12 runtime itself
 * (libcudart.so.12, 0.7 MB) is carried as is; only cuBLAS is bridged. The entry
 * points below keep the same signatures in cuBLAS 12 and 13, and the enum values
 * FAISS passes (cudaDataType, cublasComputeType_t, CUBLAS_GEMM_DEFAULT, math modes)
 * did not change. On a machine with CUDA 12 none of this is needed:
 * `pip install faiss-gpu-cu12` brings the real libraries.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

typedef int st;   /* cublasStatus_t */
typedef void *h;  /* cublasHandle_t */

static void *lib(void) {
    static void *handle;
    if (!handle) {
        handle = dlopen("libcublas.so.13", RTLD_NOW | RTLD_LOCAL);
        if (!handle) {
            fprintf(stderr, "cublas12 shim: cannot load libcublas.so.13: %s\n", dlerror());
            abort();
        }
    }
    return handle;
}

static void *sym(const char *name) {
    void *f = dlsym(lib(), name);
    if (!f) {
        fprintf(stderr, "cublas12 shim: libcublas.so.13 lacks %s\n", name);
        abort();
    }
    return f;
}

#define FWD(name, params, args)                                   \
    st name params {                                              \
        static st(*real) params;                                  \
        if (!real) real = (st(*) params)sym(#name);               \
        return real args;                                         \
    }

FWD(cublasCreate_v2, (h *handle), (handle))
FWD(cublasDestroy_v2, (h handle), (handle))
FWD(cublasSetStream_v2, (h handle, void *stream), (handle, stream))
FWD(cublasGetMathMode, (h handle, int *mode), (handle, mode))
FWD(cublasSetMathMode, (h handle, int mode), (handle, mode))
FWD(cublasSgemmEx,
    (h handle, int ta, int tb, int m, int n, int k, const float *alpha, const void *A, int Atype, int lda,
     const void *B, int Btype, int ldb, const float *beta, void *C, int Ctype, int ldc),
    (handle, ta, tb, m, n, k, alpha, A, Atype, lda, B, Btype, ldb, beta, C, Ctype, ldc))
FWD(cublasGemmEx,
    (h handle, int ta, int tb, int m, int n, int k, const void *alpha, const void *A, int Atype, int lda,
     const void *B, int Btype, int ldb, const void *beta, void *C, int Ctype, int ldc, int compute, int algo),
    (handle, ta, tb, m, n, k, alpha, A, Atype, lda, B, Btype, ldb, beta, C, Ctype, ldc, compute, algo))
FWD(cublasGemmStridedBatchedEx,
    (h handle, int ta, int tb, int m, int n, int k, const void *alpha, const void *A, int Atype, int lda,
     long long sA, const void *B, int Btype, int ldb, long long sB, const void *beta, void *C, int Ctype,
     int ldc, long long sC, int batch, int compute, int algo),
    (handle, ta, tb, m, n, k, alpha, A, Atype, lda, sA, B, Btype, ldb, sB, beta, C, Ctype, ldc, sC, batch,
     compute, algo))
