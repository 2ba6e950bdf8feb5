; Scopes a cursor can be inside, innermost first when nested.
;
; `@scope.<kind>` is the whole scope, `@body` its body: the text before the
; body is the scope's header (e.g. `static int f(const char *s)`).

(function_definition body: (compound_statement) @body) @scope.function
(struct_specifier body: (field_declaration_list) @body) @scope.struct
(union_specifier body: (field_declaration_list) @body) @scope.struct
(enum_specifier body: (enumerator_list) @body) @scope.enum
