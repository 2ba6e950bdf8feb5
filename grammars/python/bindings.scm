; Names the file binds, anywhere in it: definitions, parameters, assignment,
; `for`, `with`, `except` and walrus targets. A name bound in the current
; file is never looked up in other files. Imports are not bindings here (an
; imported name is looked up in the module it comes from).
;
; `@name` is each bound name.

(function_definition name: (identifier) @name)
(class_definition name: (identifier) @name)
(type_alias_statement left: (type (identifier) @name))

; Parameters: `def f(a, b=1, c: int = 2, *args, **kw)`, `lambda x: x`.
(parameters (identifier) @name)
(lambda_parameters (identifier) @name)
(default_parameter name: (identifier) @name)
(typed_default_parameter name: (identifier) @name)
(typed_parameter (identifier) @name)
(list_splat_pattern (identifier) @name)
(dictionary_splat_pattern (identifier) @name)

; Assignment targets: `x = 1`, `x: int = 1`, `x += 1`, `a, (b, c) = ...`,
; `self.count = 0` (an attribute the file sets).
(assignment left: (identifier) @name)
(augmented_assignment left: (identifier) @name)
(assignment left: (attribute attribute: (identifier) @name))
(pattern_list (identifier) @name)
(tuple_pattern (identifier) @name)
(list_pattern (identifier) @name)

; `for x in ...`, `[... for x in ...]`, `with ... as f` and `except E as e`
; (both an `as_pattern`), `(n := len(a))`.
(for_statement left: (identifier) @name)
(for_in_clause left: (identifier) @name)
(as_pattern_target (identifier) @name)
(named_expression name: (identifier) @name)
