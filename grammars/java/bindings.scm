; Names the file binds, anywhere in it: classes, interfaces, enums and
; records, their methods, fields and constants, type and formal parameters,
; local variables, loop, catch, lambda and pattern variables. Imports are
; not bindings here (an imported class is looked up in its package).
;
; `@name` is each bound name.

(class_declaration name: (identifier) @name)
(record_declaration name: (identifier) @name)
(interface_declaration name: (identifier) @name)
(enum_declaration name: (identifier) @name)
(enum_constant name: (identifier) @name)
(annotation_type_declaration name: (identifier) @name)
(method_declaration name: (identifier) @name)
(constructor_declaration name: (identifier) @name)
(variable_declarator name: (identifier) @name)
(type_parameter (type_identifier) @name)
(formal_parameter name: (identifier) @name)
(spread_parameter (variable_declarator name: (identifier) @name))
(enhanced_for_statement name: (identifier) @name)
(catch_formal_parameter name: (identifier) @name)
(lambda_expression parameters: (identifier) @name)
(inferred_parameters (identifier) @name)
(type_pattern (identifier) @name)
