; Scopes a cursor can be inside, innermost first when nested.
;
; `@scope.<kind>` is the whole scope, `@body` its body: the text before the
; body is the scope's header (e.g. `public static int f(int a)`).

(method_declaration body: (block) @body) @scope.method
(constructor_declaration body: (constructor_body) @body) @scope.method
(lambda_expression body: (block) @body) @scope.closure
(class_declaration body: (class_body) @body) @scope.class
(record_declaration body: (class_body) @body) @scope.class
(object_creation_expression (class_body) @body) @scope.class
(interface_declaration body: (interface_body) @body) @scope.trait
(enum_declaration body: (enum_body) @body) @scope.enum
