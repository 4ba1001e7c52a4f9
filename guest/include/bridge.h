/* bridge.h: declaring host imports and guest exports in C guests built with `bridge build`.
 *
 *   BRIDGE_IMPORT(sum_i32) int64_t sum_i32(const int32_t *xs, size_t n);   -- import env.sum_i32
 *   BRIDGE_EXPORT(step) int32_t step(int32_t x) { ... }                   -- export "step"
 *
 * Pointers and size_t are 32-bit on wasm32 and 64-bit on wasm64; the host declares them once with
 * `usize` and pointer-typed parameters, so the same source serves both targets.
 */
#ifndef BRIDGE_H
#define BRIDGE_H

#include <stddef.h>
#include <stdint.h>

#define BRIDGE_IMPORT_FROM(module, name) __attribute__((import_module(module), import_name(#name)))
#define BRIDGE_IMPORT(name) BRIDGE_IMPORT_FROM("env", name)
#define BRIDGE_EXPORT(name) __attribute__((export_name(#name)))

#endif
