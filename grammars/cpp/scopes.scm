; Scopes a cursor can be inside, innermost first when nested.
;
; `@scope.<kind>` is the whole scope, `@body` its body: the text before the
; body is the scope's header (e.g. `int Parser::next(int k) const`).

(function_definition body: (compound_statement) @body) @scope.function
(lambda_expression body: (compound_statement) @body) @scope.closure
(class_specifier body: (field_declaration_list) @body) @scope.class
(struct_specifier body: (field_declaration_list) @body) @scope.struct
(union_specifier body: (field_declaration_list) @body) @scope.struct
(enum_specifier body: (enumerator_list) @body) @scope.enum
(namespace_definition body: (declaration_list) @body) @scope.module
(linkage_specification body: (declaration_list) @body) @scope.extern
