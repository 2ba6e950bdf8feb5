; Scopes a cursor can be inside, innermost first when nested.
;
; `@scope.<kind>` is the whole scope, `@body` its body: the text before the
; body is the scope's header (e.g. `def f(a, b) -> int:`).

(function_definition body: (block) @body) @scope.function

(class_definition body: (block) @body) @scope.class
