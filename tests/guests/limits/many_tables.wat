;; many_tables: defines more tables than a guest may create.
(module
  (table 1 funcref) (table 1 funcref) (table 1 funcref) (table 1 funcref) (table 1 funcref)
  (func (export "_start")))
