//! realm.zig: the realm ABI, version 1.2, for Zig wasm guests that run LLMs on the host.
//!
//! GENERATED from bridge/realm/abi.py by `python -m bridge.realm.header`; do not edit. The same
//! declarations as realm.h: every function returns i32, a negative value being one of the REALM_E*
//! codes; functions with variable-size output return the size they need and write only when it fits.

pub const REALM_ABI_VERSION: i32 = 1;
pub const REALM_ABI_MINOR_VERSION: i32 = 2;
pub const REALM_EINVAL: i32 = -1;
pub const REALM_EBADF: i32 = -2;
pub const REALM_ENOENT: i32 = -3;
pub const REALM_ENOMEM: i32 = -4;

/// All u32, in this order; later versions may append fields.
pub const ModelInfo = extern struct {
    n_vocab: u32,
    n_embd: u32,
    n_layer: u32,
    n_head: u32,
    n_head_kv: u32,
    n_ff: u32,
    n_ctx_train: u32,
    bos_id: u32,
    eos_id: u32,
};

/// Opens a model the host offers -> model handle (REALM_ENOMEM with 256 handles open).
pub extern "env" fn realm_model_open(name: [*]const u8, name_len: usize) i32;
/// The index-th offered model's name (`--model` order) -> bytes (no NUL); ENOENT past the last.
pub extern "env" fn realm_model_name(index: u32, out: [*]u8, out_cap: usize) i32;
/// Fills a realm_model_info -> sizeof(realm_model_info).
pub extern "env" fn realm_model_info_get(model: i32, out: *ModelInfo, out_size: usize) i32;
/// Closes a model handle (contexts made from it stay usable).
pub extern "env" fn realm_model_close(model: i32) i32;
/// A GGUF metadata value as text (numbers in decimal, arrays as JSON) -> bytes (no NUL).
pub extern "env" fn realm_model_meta(model: i32, key: [*]const u8, key_len: usize, out: [*]u8, out_cap: usize) i32;
/// Tokenizes UTF-8 text, special tokens included -> token count; over 1 MiB is REALM_EINVAL.
pub extern "env" fn realm_tokenize(model: i32, text: [*]const u8, text_len: usize, out_ids: [*]u32, out_cap: u32) i32;
/// The tokens' bytes (UTF-8 may split between tokens) -> byte count; REALM_EINVAL past INT32_MAX.
pub extern "env" fn realm_detokenize(model: i32, ids: [*]const u32, n_ids: u32, out: [*]u8, out_cap: usize) i32;
/// The model's chat template applied to a JSON array of {"role", "content"} messages -> byte count.
pub extern "env" fn realm_chat_apply(model: i32, messages_json: [*]const u8, messages_len: usize, add_generation_prompt: i32, out: [*]u8, out_cap: usize) i32;
/// A new context (KV cache) for n_ctx positions -> handle; REALM_ENOMEM past the host memory cap.
pub extern "env" fn realm_context_new(model: i32, n_ctx: u32) i32;
/// Frees a context and the host memory it held.
pub extern "env" fn realm_context_free(context: i32) i32;
/// Token embeddings, n_ids*n_embd floats -> written (or needed) count; REALM_EINVAL past INT32_MAX.
pub extern "env" fn realm_embed_tokens(model: i32, ids: [*]const u32, n_ids: u32, out: [*]f32, out_len: usize) i32;
/// One transformer layer, in place on hidden (n_tokens*n_embd floats) at position.. -> 0.
pub extern "env" fn realm_forward_layer(context: i32, layer: u32, hidden: [*]f32, n_tokens: u32, position: u32) i32;
/// Final norm and output projection of ONE hidden vector -> n_vocab.
pub extern "env" fn realm_compute_logits(model: i32, hidden: [*]const f32, out: [*]f32, out_len: usize) i32;
/// A tensor dequantized to floats, by its GGUF name -> element count; REALM_EINVAL past INT32_MAX.
pub extern "env" fn realm_get_tensor(model: i32, name: [*]const u8, name_len: usize, out: [*]f32, out_len: usize) i32;
/// Logs a message at level 0 debug, 1 info, 2 warning, 3 error -> 0.
pub extern "env" fn realm_log(level: i32, msg: [*]const u8, len: usize) i32;
