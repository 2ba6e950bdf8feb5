; Names the file binds, anywhere in it: functions, classes, types, fields,
; enum constants, namespaces, macros, template and function parameters,
; variables (range-for and lambda captures too). Includes and
; using-declarations are not bindings.
;
; `@name` is each bound name.

(function_declarator declarator: (identifier) @name)
(function_declarator declarator: (field_identifier) @name)
(function_declarator declarator: (qualified_identifier name: (identifier) @name))
(class_specifier name: (type_identifier) @name)
(struct_specifier name: (type_identifier) @name)
(union_specifier name: (type_identifier) @name)
(enum_specifier name: (type_identifier) @name)
(enumerator name: (identifier) @name)
(type_definition declarator: (type_identifier) @name)
(alias_declaration name: (type_identifier) @name)
(namespace_definition name: (namespace_identifier) @name)
(field_declaration declarator: (field_identifier) @name)
(field_declaration declarator: (_ declarator: (field_identifier) @name))
(preproc_def name: (identifier) @name)
(preproc_function_def name: (identifier) @name)
(type_parameter_declaration (type_identifier) @name)
(parameter_declaration declarator: (identifier) @name)
(parameter_declaration declarator: (_ (identifier) @name))
(optional_parameter_declaration declarator: (identifier) @name)
(optional_parameter_declaration declarator: (_ (identifier) @name))
(declaration declarator: (identifier) @name)
(init_declarator declarator: (identifier) @name)
(init_declarator declarator: (_ (identifier) @name))
(declaration declarator: (array_declarator declarator: (identifier) @name))
(declaration declarator: (pointer_declarator declarator: (identifier) @name))
(declaration declarator: (reference_declarator (identifier) @name))
(for_range_loop declarator: (identifier) @name)
(for_range_loop declarator: (_ (identifier) @name))
(structured_binding_declarator (identifier) @name)
(lambda_capture_specifier (identifier) @name)
