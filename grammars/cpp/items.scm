; Items a command works on when nothing is selected: explain and refactor
; take the innermost `@item` around the cursor.
;
; An `@item` whose parent node is an `@item` too is taken with its parent.

(function_definition) @item
(class_specifier body: (_)) @item
(struct_specifier body: (_)) @item
(enum_specifier body: (_)) @item
(namespace_definition) @item
(template_declaration) @item
