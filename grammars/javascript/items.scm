; Items a command works on when nothing is selected: explain and refactor
; take the innermost `@item` around the cursor.
;
; An `@item` whose parent node is an `@item` too is taken with its parent.

(function_declaration) @item
(generator_function_declaration) @item
(class_declaration) @item
(method_definition) @item
(export_statement) @item
(lexical_declaration (variable_declarator value: [(arrow_function) (function_expression)])) @item
