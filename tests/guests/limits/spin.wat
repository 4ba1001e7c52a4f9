;; spin: loops for ever in pure wasm, never calling the host.
(module
  (func (export "_start")
    (loop $forever (br $forever))))
