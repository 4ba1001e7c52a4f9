;; many_memories: defines more memories than a guest may create.
(module
  (memory 1) (memory 1) (memory 1) (memory 1) (memory 1) (memory 1) (memory 1) (memory 1) (memory 1)
  (func (export "_start")))
