; Scopes a cursor can be inside, innermost first when nested.
;
; `@scope.<kind>` is the whole scope, `@body` its body: the text before the
; body is the scope's header (e.g. `pub fn f(a: u8) -> u8`).

(function_item body: (block) @body) @scope.function

(closure_expression body: (block) @body) @scope.closure

(impl_item body: (declaration_list) @body) @scope.impl

(trait_item body: (declaration_list) @body) @scope.trait

(mod_item body: (declaration_list) @body) @scope.module

(struct_item body: (field_declaration_list) @body) @scope.struct

(enum_item body: (enum_variant_list) @body) @scope.enum

(foreign_mod_item body: (declaration_list) @body) @scope.extern
