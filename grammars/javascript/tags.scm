; Definitions in JavaScript (and JSX) source.
;
; Each pattern captures the whole item as `@definition.<kind>` and its name as
; `@name`; the first pattern in this file that captures a name node wins, so
; methods come before functions.

(class_body (method_definition name: (_) @name) @definition.method)

(class_body (field_definition property: (_) @name) @definition.attribute)

(function_declaration name: (identifier) @name) @definition.function

(generator_function_declaration name: (identifier) @name) @definition.function

(class_declaration name: (identifier) @name) @definition.class

; `const f = (a) => ...`, `const f = function () {}` at the top or exported:
; functions by another spelling.
(program
  (lexical_declaration
    (variable_declarator
      name: (identifier) @name
      value: [(arrow_function) (function_expression) (generator_function)]) @definition.function))

(export_statement
  (lexical_declaration
    (variable_declarator
      name: (identifier) @name
      value: [(arrow_function) (function_expression) (generator_function)]) @definition.function))

; Other top-level (or exported) `const`/`let`/`var`: constants (not a
; `require`, which is an import).
(program
  [
    (lexical_declaration (variable_declarator name: (identifier) @name))
    (variable_declaration (variable_declarator name: (identifier) @name))
  ] @definition.constant
  (#not-match? @definition.constant "require\\s*\\("))
(export_statement
  (lexical_declaration (variable_declarator name: (identifier) @name)) @definition.constant)
