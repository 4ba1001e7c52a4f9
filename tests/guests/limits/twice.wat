;; twice: a valid module that imports the same host function twice.
(module
  (import "env" "tick" (func $a (result i32)))
  (import "env" "tick" (func $b (result i32)))
  (func (export "both") (result i32) (i32.add (call $a) (call $b))))
