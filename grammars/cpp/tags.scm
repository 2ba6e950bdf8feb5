; Definitions in C++ source and headers.
;
; Each pattern captures the whole item as `@definition.<kind>` and its name as
; `@name`; the first pattern in this file that captures a name node wins, so
; methods come before functions.

; Methods: defined or declared in a class body, or defined outside it
; (`int A::f() {}`).
(field_declaration_list
  (function_definition declarator: (function_declarator declarator: [(field_identifier) (identifier)] @name)) @definition.method)
(field_declaration_list
  (field_declaration declarator: (function_declarator declarator: [(field_identifier) (identifier)] @name)) @definition.method)
(field_declaration_list
  (declaration declarator: (function_declarator declarator: [(field_identifier) (identifier)] @name)) @definition.method)
(function_definition
  declarator: (function_declarator declarator: (qualified_identifier name: (identifier) @name))) @definition.method
(function_definition
  declarator: (reference_declarator (function_declarator declarator: (qualified_identifier name: (identifier) @name)))) @definition.method
(function_definition
  declarator: (pointer_declarator declarator: (function_declarator declarator: (qualified_identifier name: (identifier) @name)))) @definition.method

(function_definition declarator: (function_declarator declarator: (identifier) @name)) @definition.function
(function_definition
  declarator: (pointer_declarator declarator: (function_declarator declarator: (identifier) @name))) @definition.function
(function_definition
  declarator: (reference_declarator (function_declarator declarator: (identifier) @name))) @definition.function

; Prototypes at namespace level.
(translation_unit (declaration declarator: (function_declarator declarator: (identifier) @name)) @definition.function)
(declaration_list (declaration declarator: (function_declarator declarator: (identifier) @name)) @definition.function)

(class_specifier name: (type_identifier) @name body: (field_declaration_list)) @definition.class
(struct_specifier name: (type_identifier) @name body: (field_declaration_list)) @definition.struct
(union_specifier name: (type_identifier) @name body: (field_declaration_list)) @definition.struct
(enum_specifier name: (type_identifier) @name body: (enumerator_list)) @definition.enum
(type_definition declarator: (type_identifier) @name) @definition.type
(alias_declaration name: (type_identifier) @name) @definition.type
(namespace_definition name: (namespace_identifier) @name) @definition.module
(concept_definition name: (identifier) @name) @definition.trait

(field_declaration_list (field_declaration declarator: (field_identifier) @name) @definition.attribute)

(preproc_def name: (identifier) @name) @definition.constant
(preproc_function_def name: (identifier) @name) @definition.macro

; Globals.
(translation_unit (declaration declarator: (init_declarator declarator: (identifier) @name)) @definition.constant)
(declaration_list (declaration declarator: (init_declarator declarator: (identifier) @name)) @definition.constant)
