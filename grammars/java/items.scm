; Items a command works on when nothing is selected: explain and refactor
; take the innermost `@item` around the cursor.
;
; An `@item` whose parent node is an `@item` too is taken with its parent.

(method_declaration) @item
(constructor_declaration) @item
(class_declaration) @item
(record_declaration) @item
(interface_declaration) @item
(enum_declaration) @item
