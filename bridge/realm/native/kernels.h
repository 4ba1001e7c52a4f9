/* The native kernels' C interface (see kernels.c); _build.py hands these declarations to cffi. */
int bridge_supports(int type);
int64_t bridge_row_bytes(int type, int64_t cols);
int bridge_matmul(const uint8_t *w, int type, int64_t rows, int64_t cols, const float *x, int64_t n,
                  float *y, int n_threads);
int bridge_cpu_level(void);
