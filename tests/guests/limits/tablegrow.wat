;; tablegrow: grows a funcref table by a million elements at a time until table.grow fails.
;; Without a cap on table elements it drives the host out of memory.
(module
  (table $t 0 funcref)
  (func (export "_start")
    (loop $more
      (br_if $more (i32.ne (table.grow $t (ref.null func) (i32.const 1000000)) (i32.const -1)))))
  (func (export "table_size") (result i32) (table.size $t)))
