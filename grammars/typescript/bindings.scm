; Names the file binds, anywhere in it: declarations, classes, interfaces,
; types and their members, type and value parameters, and the names in
; `const`/`let`/`var`, `for ... of`, `catch` and destructuring patterns.
; Imports are not bindings here (an imported name is looked up in the module
; it comes from).
;
; `@name` is each bound name.

(function_declaration name: (identifier) @name)
(generator_function_declaration name: (identifier) @name)
(function_signature name: (identifier) @name)
(function_expression name: (identifier) @name)
(class_declaration name: (type_identifier) @name)
(abstract_class_declaration name: (type_identifier) @name)
(interface_declaration name: (type_identifier) @name)
(type_alias_declaration name: (type_identifier) @name)
(enum_declaration name: (identifier) @name)
(internal_module name: (identifier) @name)
(method_definition name: (property_identifier) @name)
(method_signature name: (property_identifier) @name)
(public_field_definition name: (property_identifier) @name)
(property_signature name: (property_identifier) @name)
(type_parameter name: (type_identifier) @name)

(variable_declarator name: (identifier) @name !value)
(variable_declarator
  name: (identifier) @name
  value: (_) @_value
  (#not-match? @_value "^require\\s*\\("))

(required_parameter pattern: (identifier) @name)
(optional_parameter pattern: (identifier) @name)
(arrow_function parameter: (identifier) @name)
(assignment_pattern left: (identifier) @name)
(array_pattern (identifier) @name)
(rest_pattern (identifier) @name)
; Destructuring, but not of a `require` (an import).
(variable_declarator
  name: (object_pattern [
    (shorthand_property_identifier_pattern) @name
    (pair_pattern value: (identifier) @name)
    (object_assignment_pattern left: (shorthand_property_identifier_pattern) @name)
  ])
  value: (_) @_value
  (#not-match? @_value "^require\\s*\\("))
(required_parameter pattern: (object_pattern [
  (shorthand_property_identifier_pattern) @name
  (pair_pattern value: (identifier) @name)
  (object_assignment_pattern left: (shorthand_property_identifier_pattern) @name)
]))
(for_in_statement left: (identifier) @name)
(catch_clause parameter: (identifier) @name)
