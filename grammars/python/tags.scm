; Definitions in Python source.
;
; Each pattern captures the whole item as `@definition.<kind>` and its name as
; `@name`. When several patterns capture the same `@name` node, the pattern
; that comes first in this file wins: decorated definitions (which include
; their decorators) come before plain ones, methods before functions.

(class_definition
  body: (block
    (decorated_definition
      definition: (function_definition name: (identifier) @name)) @definition.method))

(class_definition
  body: (block
    (function_definition name: (identifier) @name) @definition.method))

(decorated_definition
  definition: (function_definition name: (identifier) @name)) @definition.function

(decorated_definition
  definition: (class_definition name: (identifier) @name)) @definition.class

(function_definition name: (identifier) @name) @definition.function

(class_definition name: (identifier) @name) @definition.class

; Module-level assignments: `X = 1`, `X: int = 1`.
(module
  (expression_statement
    (assignment left: (identifier) @name) @definition.constant))

; Class attributes: `name: str = ""` in a class body.
(class_definition
  body: (block
    (expression_statement
      (assignment left: (identifier) @name) @definition.attribute)))

; type X = int
(type_alias_statement left: (type (identifier) @name)) @definition.type
