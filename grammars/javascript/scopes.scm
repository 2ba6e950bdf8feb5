; Scopes a cursor can be inside, innermost first when nested.
;
; `@scope.<kind>` is the whole scope, `@body` its body: the text before the
; body is the scope's header (e.g. `function f(a, b)`).

(function_declaration body: (statement_block) @body) @scope.function
(generator_function_declaration body: (statement_block) @body) @scope.function
(function_expression body: (statement_block) @body) @scope.function
(generator_function body: (statement_block) @body) @scope.function
(method_definition body: (statement_block) @body) @scope.method
(arrow_function body: (statement_block) @body) @scope.closure
(class_declaration body: (class_body) @body) @scope.class
(class body: (class_body) @body) @scope.class
