; Items a command works on when nothing is selected: explain and refactor
; take the innermost `@item` around the cursor.
;
; An `@item` whose parent node is an `@item` too is taken with its parent.

(function_declaration) @item
(method_declaration) @item
(type_declaration) @item
