; Names the file binds, anywhere in it: functions, methods, types, fields,
; parameters and receivers, `const`/`var`, `:=`, `range` and type-switch
; names. Imports are not bindings here (an imported package is looked up in
; its folder).
;
; `@name` is each bound name.

(function_declaration name: (identifier) @name)
(method_declaration name: (field_identifier) @name)
(type_spec name: (type_identifier) @name)
(type_alias name: (type_identifier) @name)
(type_parameter_declaration name: (identifier) @name)
(field_declaration name: (field_identifier) @name)
(method_elem name: (field_identifier) @name)
(parameter_declaration name: (identifier) @name)
(variadic_parameter_declaration name: (identifier) @name)
(const_spec name: (identifier) @name)
(var_spec name: (identifier) @name)
(short_var_declaration left: (expression_list (identifier) @name))
(range_clause left: (expression_list (identifier) @name))
(type_switch_statement alias: (expression_list (identifier) @name))
(labeled_statement label: (label_name) @name)
