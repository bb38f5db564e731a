/* C = alpha * A @ B + beta * C, tiled over 16 x 16 blocks of C in local memory
 * (the OpenCL path of vmc/gpu/_gblas.pyx; CUDA uses cuBLAS). A is m x k and B
 * is k x n with any element strides; C is C-contiguous m x n. One work-group
 * of 256 work-items per block of C, numbered row-major over the blocks. */
#define VMC_GEMM(NAME, T)                                                           \
KERNEL void NAME(const vmc_long m, const vmc_long n, const vmc_long k, const T alpha,  \
                 GLOBAL_MEM const T *A, const vmc_long oa, const vmc_long sa0,         \
                 const vmc_long sa1, GLOBAL_MEM const T *B, const vmc_long ob,         \
                 const vmc_long sb0, const vmc_long sb1, const T beta,                 \
                 GLOBAL_MEM T *C, const vmc_long oc) {                                 \
    LOCAL_MEM T As[16][17];                                                         \
    LOCAL_MEM T Bs[16][17];                                                         \
    const vmc_long tiles_n = (n + 15) / 16;                                         \
    const vmc_long row = (GID_0 / tiles_n) * 16 + LID_0 / 16;                        \
    const vmc_long col = (GID_0 % tiles_n) * 16 + LID_0 % 16;                        \
    const int ly = (int)(LID_0 / 16), lx = (int)(LID_0 % 16);                       \
    T acc = 0;                                                                      \
    for (vmc_long t = 0; t < k; t += 16) {                                          \
        const vmc_long ar = (GID_0 / tiles_n) * 16 + ly, bc = (GID_0 % tiles_n) * 16 + lx; \
        As[ly][lx] = (ar < m && t + lx < k) ? A[oa + ar * sa0 + (t + lx) * sa1] : (T)0; \
        Bs[ly][lx] = (t + ly < k && bc < n) ? B[ob + (t + ly) * sb0 + bc * sb1] : (T)0; \
        local_barrier();                                                            \
        for (int q = 0; q < 16; q++) acc += As[ly][q] * Bs[q][lx];                  \
        local_barrier();                                                            \
    }                                                                               \
    if (row < m && col < n) {                                                       \
        T r = alpha * acc;                                                          \
        if (beta != (T)0) r += beta * C[oc + row * n + col];                        \
        C[oc + row * n + col] = r;                                                  \
    }                                                                               \
}
VMC_GEMM(vmc_gemm_f32, float)
VMC_GEMM(vmc_gemm_f64, double)
