/* The native kernels' C interface (see kernels.c); _build.py hands these declarations to cffi. */
typedef struct {
    const uint8_t *data; /* rows of ggml blocks, as in the GGUF file */
    int type;            /* ggml type id */
    int64_t rows, cols;
} bridge_weight;

int bridge_supports(int type);
int64_t bridge_row_bytes(int type, int64_t cols);
int bridge_matmul(const uint8_t *w, int type, int64_t rows, int64_t cols, const float *x, int64_t n,
                  float *y, int n_threads);
int bridge_cpu_level(void);
/* Reads bytes [0, n) of p on n_threads threads (64-byte lines, summed so the reads happen) -> the sum: for
 * `bench`'s read bandwidth. */
uint64_t bridge_read_memory(const uint8_t *p, int64_t n, int n_threads);
long bridge_scratch_grows(void); /* times a thread's kernel scratch grew (steady decoding: never) */
void bridge_cap_cpu_level(int level);
int bridge_active_cpu_level(void); /* bridge_cpu_level(), or lower when capped */
/* What a model family adds to the llama layer (bridge/realm/arch.py); NULL pointers where it adds nothing. */
typedef struct {
    const float *q_bias, *k_bias, *v_bias; /* (n_head*head_dim), (n_head_kv*head_dim), (n_head_kv*head_dim) */
    const float *q_norm, *k_norm;          /* (head_dim) each: per-head RMSNorm of q and k before RoPE */
    const float *post_attn_norm, *post_ffn_norm; /* (n_embd) each: RMSNorm of each block's output */
    const float *gelu;   /* (65536) GELU-tanh per f16 value: the FFN is GeGLU, not SwiGLU (SiLU) */
    int rope_neox;       /* RoPE turns pairs (i, i + rope_dim/2), not (2i, 2i + 1) */
    int64_t window;      /* a token sees only the last `window` positions, its own included; 0: all */
    float attn_scale;    /* the attention logits' scale; 0: 1/sqrt(head_dim) */
} bridge_arch;
/* one sequence of a batch: its tokens' count and first position, its layer's KV cache and RoPE tables */
typedef struct {
    int64_t n, position;
    uint16_t *k_cache, *v_cache;
    const float *cos_t, *sin_t;
} bridge_seq;
/* x holds every sequence's tokens, one after another: (sum of n, n_embd), updated in place; weights w[7]: q, k,
 * v, output, gate, up, down */
int bridge_layer_forward_batch(float *x, int64_t n_seq, const bridge_seq *seqs, const float *attn_norm,
                               const float *ffn_norm, const bridge_weight *w, const bridge_arch *arch,
                               int64_t n_embd, int64_t n_head,
                               int64_t n_head_kv, int64_t head_dim, int64_t rope_dim, int64_t n_ff, float eps,
                               float *scratch, int n_threads);
int64_t bridge_layer_scratch(int64_t n, int64_t end, int64_t n_embd, int64_t n_head, int64_t n_head_kv,
                             int64_t head_dim, int64_t n_ff);
