;; add: an i32 and an i64 adder for --invoke.
(module
  (func (export "add32") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1)))
  (func (export "add64") (param i64 i64) (result i64) (i64.add (local.get 0) (local.get 1))))
