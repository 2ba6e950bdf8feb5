; Names the file binds, anywhere in it: declarations, classes and their
; members, parameters, and the names in `const`/`let`/`var`, `for ... of`,
; `catch` and destructuring patterns. Imports and `require`s are not
; bindings here (an imported name is looked up in the module it comes from).
;
; `@name` is each bound name.

(function_declaration name: (identifier) @name)
(generator_function_declaration name: (identifier) @name)
(function_expression name: (identifier) @name)
(class_declaration name: (identifier) @name)
(method_definition name: (property_identifier) @name)
(field_definition property: (property_identifier) @name)

(variable_declarator name: (identifier) @name !value)
(variable_declarator
  name: (identifier) @name
  value: (_) @_value
  (#not-match? @_value "^require\\s*\\("))

(formal_parameters (identifier) @name)
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
(formal_parameters (object_pattern [
  (shorthand_property_identifier_pattern) @name
  (pair_pattern value: (identifier) @name)
  (object_assignment_pattern left: (shorthand_property_identifier_pattern) @name)
]))
(for_in_statement left: (identifier) @name)
(catch_clause parameter: (identifier) @name)
