;; host_spin: calls a host function for ever (time passes in the host as well as in wasm).
(module
  (import "env" "tick" (func $tick (result i32)))
  (func (export "_start")
    (loop $forever (drop (call $tick)) (br $forever))))
