; Names the file binds, anywhere in it: functions, types, fields, enum
; constants, macros, parameters and variables. Includes are not bindings.
;
; `@name` is each bound name.

(function_declarator declarator: (identifier) @name)
(struct_specifier name: (type_identifier) @name)
(union_specifier name: (type_identifier) @name)
(enum_specifier name: (type_identifier) @name)
(enumerator name: (identifier) @name)
(type_definition declarator: (type_identifier) @name)
(field_declaration declarator: (field_identifier) @name)
(field_declaration declarator: (_ declarator: (field_identifier) @name))
(preproc_def name: (identifier) @name)
(preproc_function_def name: (identifier) @name)
(preproc_params (identifier) @name)
(parameter_declaration declarator: (identifier) @name)
(parameter_declaration declarator: (_ declarator: (identifier) @name))
(declaration declarator: (identifier) @name)
(init_declarator declarator: (identifier) @name)
(init_declarator declarator: (_ declarator: (identifier) @name))
(declaration declarator: (array_declarator declarator: (identifier) @name))
(declaration declarator: (pointer_declarator declarator: (identifier) @name))
