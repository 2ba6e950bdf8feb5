; Definitions in Java source.
;
; Each pattern captures the whole item as `@definition.<kind>` and its name as
; `@name`; the first pattern in this file that captures a name node wins.

(method_declaration name: (identifier) @name) @definition.method
(constructor_declaration name: (identifier) @name) @definition.method
(class_declaration name: (identifier) @name) @definition.class
(record_declaration name: (identifier) @name) @definition.class
(interface_declaration name: (identifier) @name) @definition.trait
(annotation_type_declaration name: (identifier) @name) @definition.trait
(enum_declaration name: (identifier) @name) @definition.enum
(field_declaration
  (modifiers "static")
  declarator: (variable_declarator name: (identifier) @name)) @definition.constant
(field_declaration declarator: (variable_declarator name: (identifier) @name)) @definition.attribute
(constant_declaration declarator: (variable_declarator name: (identifier) @name)) @definition.constant
