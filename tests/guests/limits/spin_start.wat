;; spin_start: loops for ever in its start function, so during instantiation.
(module
  (func $spin (loop $forever (br $forever)))
  (start $spin)
  (func (export "_start")))
