; Scopes a cursor can be inside, innermost first when nested.
;
; `@scope.<kind>` is the whole scope, `@body` its body: the text before the
; body is the scope's header (e.g. `func (s *Server) Start(port int) error`).

(function_declaration body: (block) @body) @scope.function
(method_declaration body: (block) @body) @scope.method
(func_literal body: (block) @body) @scope.closure
(type_declaration (type_spec type: (struct_type (field_declaration_list) @body))) @scope.struct
(type_declaration (type_spec type: (interface_type) @body)) @scope.trait
