; Definitions in Rust source.
;
; Each pattern captures the whole item as `@definition.<kind>` and its name as
; `@name`. When several patterns capture the same `@name` node, the pattern
; that comes first in this file wins: so the specific `method` patterns come
; before the general `function` one.

; Methods and associated functions: functions inside an impl or trait body.
(impl_item
  body: (declaration_list
    (function_item name: (identifier) @name) @definition.method))

(trait_item
  body: (declaration_list
    (function_item name: (identifier) @name) @definition.method))

(trait_item
  body: (declaration_list
    (function_signature_item name: (identifier) @name) @definition.method))

(function_item name: (identifier) @name) @definition.function

(function_signature_item name: (identifier) @name) @definition.function

(struct_item name: (type_identifier) @name) @definition.struct

(union_item name: (type_identifier) @name) @definition.struct

(enum_item name: (type_identifier) @name) @definition.enum

(trait_item name: (type_identifier) @name) @definition.trait

; `impl Type`, `impl<T> Type<T>`, `impl Trait for path::Type`: named after the type.
(impl_item
  type: [
    (type_identifier) @name
    (generic_type type: (type_identifier) @name)
    (scoped_type_identifier name: (type_identifier) @name)
    (generic_type type: (scoped_type_identifier name: (type_identifier) @name))
  ]) @definition.impl

(const_item name: (identifier) @name) @definition.constant

(static_item name: (identifier) @name) @definition.constant

(type_item name: (type_identifier) @name) @definition.type

(associated_type name: (type_identifier) @name) @definition.type

(mod_item name: (identifier) @name) @definition.module

(macro_definition name: (identifier) @name) @definition.macro
