;; hello.wat: the hello guest by hand in the WebAssembly text format, against examples/hello/host.py.
;;
;; It sums 1..10 with the host's sum_i32 (a pointer and a count, as the C guest passes them) and prints
;; the result through WASI's fd_write. bridge runs .wat files as they are:
;;
;;   python -m bridge run examples/hello-wat/hello.wat --host examples/hello/host.py
(module
  (import "env" "sum_i32" (func $sum_i32 (param i32 i32) (result i64)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  ;; 1..10 as i32 at 64; the text at 128; an iovec at 16; the byte count written at 24
  (data (i32.const 64) "\01\00\00\00\02\00\00\00\03\00\00\00\04\00\00\00\05\00\00\00\06\00\00\00\07\00\00\00\08\00\00\00\09\00\00\00\0a\00\00\00")
  (data (i32.const 128) "sum of 1..10 = ")
  (func (export "_start")
    (local $sum i64) (local $end i32)
    (local.set $sum (call $sum_i32 (i32.const 64) (i32.const 10)))
    ;; the sum (below 100 here) as two decimal digits after the text, then a newline
    (i32.store8 (i32.const 143) (i32.add (i32.const 48) (i32.wrap_i64 (i64.div_u (local.get $sum) (i64.const 10)))))
    (i32.store8 (i32.const 144) (i32.add (i32.const 48) (i32.wrap_i64 (i64.rem_u (local.get $sum) (i64.const 10)))))
    (i32.store8 (i32.const 145) (i32.const 10))
    (i32.store (i32.const 16) (i32.const 128))
    (i32.store (i32.const 20) (i32.const 18))
    (drop (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)))))
