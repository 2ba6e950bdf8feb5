; Names the file binds, anywhere in it: items, enum variants, fields,
; generic parameters, function and closure parameters, and the names in
; `let`, `for`, `if let`, `while let` and `match` patterns. A name bound in the
; current file is never looked up in other files. `use` declarations are not
; bindings here (an imported name is looked up in the module it comes from).
;
; `@name` is each bound name.

(function_item name: (identifier) @name)
(function_signature_item name: (identifier) @name)
(struct_item name: (type_identifier) @name)
(union_item name: (type_identifier) @name)
(enum_item name: (type_identifier) @name)
(enum_variant name: (identifier) @name)
(field_declaration name: (field_identifier) @name)
(trait_item name: (type_identifier) @name)
(type_item name: (type_identifier) @name)
(associated_type name: (type_identifier) @name)
(const_item name: (identifier) @name)
(static_item name: (identifier) @name)
(mod_item name: (identifier) @name)
(macro_definition name: (identifier) @name)
(type_parameter name: (type_identifier) @name)
(const_parameter name: (identifier) @name)

; Parameters: `fn f(x: u8)`, `|a, b: u8|`.
(parameter pattern: (identifier) @name)
(closure_parameters (identifier) @name)

; Patterns: `let x`, `for x in`, `if let x =`, `match v { x => }`, and the
; names inside tuple, struct, slice, `ref`, `mut`, `&`, `x @` and `|`
; patterns at any depth (not the path of `Some(x)`).
(let_declaration pattern: (identifier) @name)
(for_expression pattern: (identifier) @name)
(let_condition pattern: (identifier) @name)
(match_pattern (identifier) @name)
(tuple_pattern (identifier) @name)
(tuple_struct_pattern type: (_) (identifier) @name)
(slice_pattern (identifier) @name)
(ref_pattern (identifier) @name)
(mut_pattern (identifier) @name)
(reference_pattern (identifier) @name)
(captured_pattern (identifier) @name)
(or_pattern (identifier) @name)
(field_pattern name: (shorthand_field_identifier) @name)
(field_pattern pattern: (identifier) @name)
